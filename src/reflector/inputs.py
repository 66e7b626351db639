"""Base class for request bodies: unknown fields and explicit nulls get a sentence, not a shrug."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator


class StrictInput(BaseModel):
    """A JSON request body. Unknown fields are refused, naming the fields that are accepted."""

    model_config = ConfigDict(extra="forbid")

    # Fields that may be left out but, when present, must not be null (PATCH bodies).
    non_nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        allowed = set(cls.model_fields)
        unknown = sorted(str(key) for key in data if key not in allowed)
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            raise ValueError(
                f"unknown field{'s' if len(unknown) > 1 else ''} {names}; "
                f"accepted fields are {', '.join(sorted(allowed))}"
            )
        nulls = sorted(key for key in cls.non_nullable if key in data and data[key] is None)
        if nulls:
            raise ValueError(
                f"{', '.join(nulls)} may not be null; leave the field out to keep its value"
            )
        return data
