"""Validation errors with Lago-style error codes (the 422 ``error_details`` vocabulary)."""

from __future__ import annotations

from schemas.bounds import VALUE_IS_OUT_OF_RANGE

__all__ = [
    "INVALID_FORMAT",
    "INVALID_TYPE",
    "INVALID_VALUE",
    "VALUE_IS_MANDATORY",
    "VALUE_IS_OUT_OF_RANGE",
    "VALUE_IS_TOO_LONG",
    "InvalidField",
]

#: Required field missing, null, empty or blank (Lago's ``presence`` code).
VALUE_IS_MANDATORY = "value_is_mandatory"
#: Wrong JSON type (e.g. a number where a string is required, a non-object event).
INVALID_TYPE = "invalid_type"
#: Right type, unacceptable value (nested property, non-numeric amount, NaN…).
INVALID_VALUE = "invalid_value"
#: String longer than allowed (an identifier beyond ``schemas.bounds.MAX_ID_LENGTH``
#: characters), or an event beyond ``schemas.bounds.MAX_EVENT_BYTES`` (HTTP ingest).
VALUE_IS_TOO_LONG = "value_is_too_long"
#: Timestamp that is neither Unix seconds nor RFC 3339 — Lago's code for timestamps.
INVALID_FORMAT = "invalid_format"
# VALUE_IS_OUT_OF_RANGE (defined in schemas.bounds): a well-formed number or instant the store
# cannot hold (an amount ≥ 10**26, a timestamp outside [1970, 2100)).


class InvalidField(ValueError):
    """A field of an event failed validation.

    ``field`` is the offending field name (``"event"`` for the whole payload), ``code`` a
    Lago-style error code (the constants of this module), ``message`` a human-readable text.
    """

    field: str
    code: str
    message: str

    def __init__(self, field: str, code: str, message: str | None = None) -> None:
        self.field = field
        self.code = code
        self.message = message if message is not None else f"{field}: {code}"
        super().__init__(self.message)

    def __reduce__(self) -> tuple[type[InvalidField], tuple[str, str, str]]:
        return (type(self), (self.field, self.code, self.message))

    def __repr__(self) -> str:
        return f"InvalidField(field={self.field!r}, code={self.code!r}, message={self.message!r})"
