"""What every typed request body shares: its text checked once, its times in range.

Every request model derives from :class:`RequestBody`, so no field (names, URLs, attribute
values, idempotency keys, keys of objects) can carry NUL, control characters or lone
surrogates into storage: PostgreSQL refuses U+0000 with an error no client should see.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, model_validator
from pydantic_core import PydanticCustomError

from app.registry import clock
from resolver.text import first_problem, problem

# An aware time whose UTC form exists (years 1 to 9999).
Moment = Annotated[AwareDatetime, AfterValidator(clock.in_utc)]


class RequestBody(BaseModel):
    """Base of the API's typed JSON bodies: text anywhere in them is checked first
    (``resolver/text.py``), and a problem is answered naming its field."""

    @model_validator(mode="before")
    @classmethod
    def _plain_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                if isinstance(name, str) and (found := problem(name)):
                    raise PydanticCustomError("text", "a field name {found}", {"found": found})
                if (found := first_problem(value, str(name))) is not None:
                    raise PydanticCustomError("text", "{found}", {"found": found})
        return data


__all__ = ["Moment", "RequestBody"]
