"""Request bodies of the admin API: JSON read so that no body can make a 500.

Every POST handler reads its body here: bytes that are not UTF-8, not JSON, nested too
deep for the parser or holding an integer too long to convert are each a 400 (a fuzzer
found each of them as a 500 with a traceback).
"""

from __future__ import annotations

import json
from typing import Any

from cairn.admin.source import BadRequestError


def parse_json_body(raw: bytes, *, required: bool) -> Any:
    """A request body's JSON document (`{}` for an empty optional body), or
    `BadRequestError`: for bytes that are not UTF-8, not JSON, nested too deep for the
    parser, or holding an integer too long to convert (each a 400, never a 500)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("the body is not UTF-8") from None
    if not text.strip():
        if required:
            raise BadRequestError("a JSON body is required")
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequestError("the body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond sys.get_int_max_str_digits()
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """An optional body that must be a JSON object (`{}` when empty)."""
    body = parse_json_body(raw, required=False)
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body
