"""The shape of one item of a batch registration: the body of one
``POST /api/v1/identifiers``, checked before anything else is (``bulk.py``)."""

from __future__ import annotations

from typing import Any

from app.errors import InvalidRequest
from resolver.text import first_problem

MAX_KEY = 200

_SHAPE: dict[str, tuple[type, ...]] = {
    "handle": (str,),
    "prefix": (str,),
    "template": (str,),
    "attributes": (dict,),
    "visibility": (dict,),
    "url": (str,),
    "idempotencyKey": (str,),
}


def item_request(body: Any) -> dict[str, Any]:
    """The same shape one ``POST /api/v1/identifiers`` body has (unknown fields ignored)."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            "each item must be a JSON object like the body of POST /api/v1/identifiers"
        )
    if "template" not in body:
        raise InvalidRequest('"template" is required (a template id such as food.batch)')
    if (found := first_problem(body, "item")) is not None:
        raise InvalidRequest(found)
    wrong = [
        name
        for name, kinds in _SHAPE.items()
        if body.get(name) is not None and not isinstance(body[name], kinds)
    ]
    if wrong:
        raise InvalidRequest(
            "; ".join(
                f"{name}: must be {'an object' if _SHAPE[name] == (dict,) else 'text'}"
                for name in wrong
            )
        )
    return body


def item_key(key: str | None) -> str | None:
    if key is not None and not 0 < len(key) <= MAX_KEY:
        raise InvalidRequest(f"the idempotency key must be 1 to {MAX_KEY} characters")
    return key
