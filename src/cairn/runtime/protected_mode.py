"""Redis's protected mode: with no password, only clients on this host are served.

Redis 7.0 (`networking.c`, `clientAcceptHandlerCommon`): when `protected-mode` is yes and
the default user has no password, a client whose address is not loopback is sent one
`-DENIED ...` line and closed before anything it sends is read. Cairn applies the same
rule on its client port (plain and TLS) and says so at start when it listens beyond
loopback with no password, since then every remote client will be refused. The admin
API has its own equivalent (`cairn.admin.access`: with no token it refuses every
request, and it does not start on a non-loopback address).

The decision (`refuses`) is a pure function of the setting, the password and the
client's address, so it is tested without a second machine.
"""

from __future__ import annotations

import ipaddress

DENIED = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no "
    b"password is set for the default user. In this mode connections are only accepted "
    b"from the loopback interface. If you want to connect from external computers to Redis "
    b"you may adopt one of the following solutions: 1) Just disable protected mode sending "
    b"the command 'CONFIG SET protected-mode no' from the loopback interface by connecting "
    b"to Redis from the same host the server is running, however MAKE SURE Redis is not "
    b"publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change "
    b"permanent. 2) Alternatively you can just disable the protected mode by editing the "
    b"Redis configuration file, and setting the protected mode option to 'no', and then "
    b"restarting the server. 3) If you started the server manually just for testing, "
    b"restart it with the '--protected-mode no' option. 4) Setup a an authentication "
    b"password for the default user. NOTE: You only need to do one of the above things in "
    b"order for the server to start accepting connections from the outside.\r\n"
)
"""Redis 7.0.15's reply, byte for byte (typo included), as sent to a remote client."""


def is_local(host: str) -> bool:
    """Whether a client address is this host's loopback (127.0.0.0/8, ::1, or an
    IPv4-mapped loopback); anything unparsable is not local."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def refuses(protected: bool, password: str | None, client_host: str) -> bool:
    """Whether protected mode turns this client away (Redis's rule)."""
    return protected and password is None and not is_local(client_host)


def start_warning(protected: bool, password: str | None, bind_host: str) -> str | None:
    """The warning a node logs at start when its client port is open beyond loopback
    with no password: under protected mode remote clients are refused, without it
    anyone who reaches the port has the whole keyspace."""
    if password is not None or is_local(bind_host) or bind_host == "localhost":
        return None
    if protected:
        return (
            f"protected mode: the client port listens on {bind_host} with no password, so "
            "only clients on this host are served (others get -DENIED); set password_file "
            "(or CAIRN_PASSWORD), or protected_mode = false on a trusted network"
        )
    return (
        f"INSECURE: the client port listens on {bind_host} with no password and protected "
        "mode off: whoever reaches it can read and change every key"
    )
