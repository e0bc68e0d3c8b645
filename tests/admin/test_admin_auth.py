"""Who may use the admin API: tokens and roles, the browser defences, the token file, the
protected mode, and what `cairn ctl` does with tokens (issue 14)."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_support import (
    ADMIN_TOKEN,
    READ_TOKEN,
    http,
    placement_source,
    sample_driver,
    served,
    write_test_tokens,
)
from click.testing import CliRunner, Result

from cairn.admin.access import Access, AdminStartError, is_loopback, same_origin
from cairn.cli.main import main
from cairn.placement import PlacementDriver
from cairn.placement.model import NodeState
from cairn.runtime.admin_tokens import (
    Role,
    TokenFileError,
    TokenStore,
    create_token,
    digest,
    ensure_dev_token,
    read_tokens,
    revoke_token,
)

PLACEMENT = json.dumps({"replicas": 5}).encode()


@pytest.fixture
def driver() -> PlacementDriver:
    return sample_driver()


@pytest.fixture
def url(driver: PlacementDriver) -> Iterator[str]:
    with served(placement_source(driver)) as address:
        yield f"http://{address}"


def untouched(driver: PlacementDriver) -> bool:
    """No node drained and the rules as they started."""
    nodes_up = all(n.state is NodeState.UP for n in driver.nodes())
    return nodes_up and driver.status().rules.replicas == 3


# -- tokens and roles -------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "cairn_wrong", READ_TOKEN + "x"])
def test_no_token_or_an_unknown_one_is_401(url: str, token: str | None) -> None:
    for method, path in (("GET", "/v1/status"), ("GET", "/metrics"), ("GET", "/v1")):
        status, ctype, doc = http(method, url + path, token=token)
        assert status == 401 and ctype.startswith("application/json")
        assert doc["error"] == {
            "status": 401,
            "code": "unauthorized",
            "message": doc["error"]["message"],
        }
    assert http("POST", url + "/v1/placement", PLACEMENT, token=token)[0] == 401


def test_401_names_the_scheme(url: str) -> None:
    headers = {"Authorization": "Basic YWRtaW46YWRtaW4="}
    status, _, doc = http("GET", url + "/v1/status", headers=headers)
    assert status == 401 and "Bearer" in doc["error"]["message"]


def test_a_read_only_token_reads_but_changes_nothing(url: str, driver: PlacementDriver) -> None:
    assert http("GET", url + "/v1/status", token=READ_TOKEN)[0] == 200
    assert http("GET", url + "/v1/events", token=READ_TOKEN)[0] == 200
    status, ctype, _ = http("GET", url + "/metrics", token=READ_TOKEN)
    assert status == 200 and ctype.startswith("text/plain")
    for path, body in (("/v1/nodes/3/drain", b"{}"), ("/v1/placement", PLACEMENT)):
        status, _, doc = http("POST", url + path, body, token=READ_TOKEN)
        assert status == 403 and doc["error"]["code"] == "forbidden"
        assert "role admin" in doc["error"]["message"]
    assert untouched(driver)


def test_an_admin_token_changes_state_and_the_log_says_who(
    url: str, driver: PlacementDriver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "cairn.admin")
    status, _, doc = http("POST", url + "/v1/nodes/3/drain", b'{"reason": "disks"}')
    assert status == 202 and doc["ok"] is True
    assert next(n for n in driver.nodes() if n.id == 3).state is NodeState.DRAINING
    assert http("POST", url + "/v1/placement", PLACEMENT)[0] == 200
    assert driver.status().rules.replicas == 5
    http("POST", url + "/v1/placement", PLACEMENT, token=READ_TOKEN)
    lines = [r.getMessage() for r in caplog.records if r.name == "cairn.admin"]
    drain = [x for x in lines if "/v1/nodes/3/drain -> 202" in x]
    assert drain and "adm (test admin)" in drain[0] and "from 127.0.0.1" in drain[0]
    assert any("/v1/placement -> 403 by token rd (test reader)" in x for x in lines)
    assert not any(ADMIN_TOKEN in x or READ_TOKEN in x for x in caplog.text.splitlines())


def test_no_state_change_through_get(url: str, driver: PlacementDriver) -> None:
    for path in ("/v1/nodes/3/drain", "/v1/placement?replicas=1"):
        status, _, doc = http("GET", url + path)
        assert status in (404, 405) and "error" in doc
    assert untouched(driver)


# -- browser defences -------------------------------------------------------------------


@pytest.mark.parametrize(
    "ctype",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
    ],
)
def test_a_form_style_post_is_415_even_with_a_token(
    url: str, driver: PlacementDriver, ctype: str
) -> None:
    for token in (ADMIN_TOKEN, None):
        headers = {"Content-Type": ctype}
        status, _, doc = http("POST", url + "/v1/placement", PLACEMENT, headers, token)
        assert status == 415 and doc["error"]["code"] == "unsupported-media-type"
        status, _, _ = http("POST", url + "/v1/nodes/3/drain", b"{}", headers, token)
        assert status == 415
    assert untouched(driver)


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1", "x"]
)
def test_a_foreign_origin_is_403_even_with_an_admin_token(
    url: str, driver: PlacementDriver, origin: str
) -> None:
    headers = {"Origin": origin}
    status, _, doc = http("POST", url + "/v1/nodes/3/drain", b"{}", headers)
    assert status == 403 and "cross-origin" in doc["error"]["message"]
    assert http("GET", url + "/v1/status", headers=headers)[0] == 403
    assert untouched(driver)


def test_the_apis_own_origin_is_allowed(url: str, driver: PlacementDriver) -> None:
    status, _, _ = http("POST", url + "/v1/nodes/3/drain", b"{}", {"Origin": url})
    assert status == 202 and not untouched(driver)


def test_origins_compare_scheme_host_and_port() -> None:
    assert same_origin("http://LOCALHOST:80", "http", "localhost")
    assert same_origin("http://127.0.0.1:27001/", "http", "127.0.0.1:27001")
    assert not same_origin("http://127.0.0.1:27002", "http", "127.0.0.1:27001")
    assert not same_origin("http://127.0.0.1:27001/x", "http", "127.0.0.1:27001")
    assert not same_origin("http://[::1", "http", "127.0.0.1:27001")


# -- the token file ---------------------------------------------------------------------


def test_tokens_are_stored_hashed_in_a_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token, entry = create_token(path, Role.ADMIN, "ops")
    other, _ = create_token(path, Role.READ)
    text = path.read_text()
    assert token not in text and other not in text
    assert token[len("cairn_") :] not in text
    assert digest(token) in text and len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [e.role for e in read_tokens(path)] == [Role.ADMIN, Role.READ]
    store = TokenStore(path)
    assert store.authenticate(token) == entry and store.authenticate(other) is not None
    assert store.authenticate(digest(token)) is None, "the digest is no token"
    assert revoke_token(path, "ops") == (entry,)
    assert store.authenticate(token) is None, "a revoked token stops working at once"
    assert store.authenticate(other) is not None
    with pytest.raises(TokenFileError, match="no token"):
        revoke_token(path, "ops")


def test_a_token_file_others_may_write_or_a_malformed_one_is_refused(tmp_path: Path) -> None:
    path = write_test_tokens(tmp_path / "tokens.json")
    os.chmod(path, 0o622)
    with pytest.raises(AdminStartError, match="chmod 600"):
        Access.open(path)
    os.chmod(path, 0o600)
    store = TokenStore(path)
    assert store.authenticate(ADMIN_TOKEN) is not None
    path.write_text('{"version": 1, "tokens": [{"id": "x"}]}')
    assert store.authenticate(ADMIN_TOKEN) is None, "a broken file fails closed"
    assert store.problem is not None and "tokens[0]" in store.problem
    with pytest.raises(AdminStartError, match="No such file"):
        Access.open(tmp_path / "missing.json")


def test_a_dev_token_is_made_once_and_reused(tmp_path: Path) -> None:
    token = ensure_dev_token(tmp_path)
    assert ensure_dev_token(tmp_path) == token
    assert stat.S_IMODE((tmp_path / "admin.token").stat().st_mode) == 0o600
    revoke_token(tmp_path / "admin_tokens.json", "dev")
    assert ensure_dev_token(tmp_path) != token, "a revoked dev token is replaced"


# -- protected mode and /metrics --------------------------------------------------------


def test_beyond_loopback_without_tokens_the_api_does_not_start(tmp_path: Path) -> None:
    empty = Access.open(None)
    for host in ("0.0.0.0", "::", "10.1.2.3", "cairn.example"):
        with pytest.raises(AdminStartError, match="not loopback"):
            empty.check_start(host, 27001)
    empty.check_start("127.0.0.1", 27001)
    empty.check_start("::1", 27001)
    Access.open(write_test_tokens(tmp_path / "t.json")).check_start("0.0.0.0", 27001)
    assert is_loopback("localhost") and is_loopback("127.9.9.9") and not is_loopback("")


def test_a_server_on_all_interfaces_without_tokens_exits_with_the_reason(tmp_path: Path) -> None:
    args = ["--node-id", "1", "--data-dir", str(tmp_path / "d"), "--peers", "1=127.0.0.1:0"]
    args += ["--client-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0"]
    args += ["--admin-addr", "0.0.0.0:0"]
    secret = tmp_path / "cluster.secret"  # the peer port's secret is not what is tested
    secret.write_text("s" * 32)
    secret.chmod(0o600)
    args += ["--cluster-secret-file", str(secret)]
    done = subprocess.run(
        [sys.executable, "-m", "cairn", "server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 1, done.stderr
    assert "not loopback" in done.stderr and "admin_tokens_file" in done.stderr


def test_public_metrics_need_no_token_but_nothing_else_changes(
    driver: PlacementDriver, tmp_path: Path
) -> None:
    access = Access.open(write_test_tokens(tmp_path / "t.json"), metrics_public=True)
    with served(placement_source(driver), access) as address:
        base = f"http://{address}"
        status, _, text = http("GET", base + "/metrics", token=None)
        assert status == 200 and "cairn_raft_term" in text
        assert http("GET", base + "/v1/status", token=None)[0] == 401
        assert http("GET", base + "/metrics", headers={"Origin": "http://evil"})[0] == 403


# -- cairn ctl --------------------------------------------------------------------------


def ctl(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, ["ctl", *args], env={"CAIRN_ADMIN_TOKEN": None, **(env or {})})


def test_ctl_exits_2_on_401_and_403(url: str, driver: PlacementDriver) -> None:
    endpoint = url.removeprefix("http://")
    refused = ctl("-e", endpoint, "status")
    assert refused.exit_code == 2 and "HTTP 401" in refused.output
    assert "--token" in refused.output and "CAIRN_ADMIN_TOKEN" in refused.output
    wrong = ctl("-e", endpoint, "--token", "cairn_nope", "node", "drain", "3")
    assert wrong.exit_code == 2 and "unknown or revoked" in wrong.output
    weak = ctl("-e", endpoint, "node", "drain", "3", env={"CAIRN_ADMIN_TOKEN": READ_TOKEN})
    assert weak.exit_code == 2 and "HTTP 403" in weak.output and "role admin" in weak.output
    assert untouched(driver)
    done = ctl("-e", endpoint, "--token", ADMIN_TOKEN, "node", "drain", "3")
    assert done.exit_code == 0, done.output


def test_ctl_token_create_list_revoke(url: str, tmp_path: Path) -> None:
    path = str(tmp_path / "tokens.json")
    made = ctl("token", "create", "--role", "read", "--name", "prometheus", "--file", path)
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("cairn_") and token not in Path(path).read_text()
    listed = ctl("--json", "token", "list", "--file", path)
    (row,) = json.loads(listed.output)["tokens"]
    assert (row["name"], row["role"]) == ("prometheus", "read") and token not in listed.output
    assert ctl("token", "create", "--role", "root", "--file", path).exit_code == 2
    gone = ctl("token", "revoke", row["id"], "--file", path)
    assert gone.exit_code == 0 and "prometheus" in gone.output
    assert json.loads(ctl("--json", "token", "list", "--file", path).output) == {"tokens": []}
    assert ctl("token", "revoke", row["id"], "--file", path).exit_code == 2


def test_ctl_finds_the_dev_clusters_token(
    driver: PlacementDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    token = ensure_dev_token(tmp_path / "cairn-data")
    access = Access.open(tmp_path / "cairn-data" / "admin_tokens.json")
    with served(placement_source(driver), access) as address:
        result = ctl("-e", address, "--json", "status")
        assert result.exit_code == 0, result.output
        assert token not in result.output
    monkeypatch.chdir(tmp_path / "cairn-data")
    with served(placement_source(driver), access) as address:
        assert ctl("-e", address, "status").exit_code == 2, "no token found elsewhere"
