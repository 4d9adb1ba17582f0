"""OCPP-J facts both sides need (pure): the CALLERROR codes of OCPP-J 2.0.1 (Part 4, 4.3) and which
code a JSON-schema failure maps to, by the failing keyword."""

from __future__ import annotations

# Every error code a CALLERROR may carry. OCPP-J 2.0.1 keeps 1.6's "Occurence" spelling; 2.1
# spells it "Occurrence". The `ocpp` library lacks RpcFrameworkError and MessageTypeNotSupported.
CALLERROR_CODES = frozenset(
    {
        "FormatViolation",
        "GenericError",
        "InternalError",
        "MessageTypeNotSupported",
        "NotImplemented",
        "NotSupported",
        "OccurenceConstraintViolation",
        "OccurrenceConstraintViolation",
        "PropertyConstraintViolation",
        "ProtocolError",
        "RpcFrameworkError",
        "SecurityError",
        "TypeConstraintViolation",
    }
)

# JSON-schema keyword -> CALLERROR code (2.0.1 spelling).
ERROR_CODE_BY_SCHEMA_KEYWORD: dict[str, str] = {
    "type": "TypeConstraintViolation",
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "minProperties": "OccurenceConstraintViolation",
    "enum": "PropertyConstraintViolation",
    "maxLength": "PropertyConstraintViolation",
    "minLength": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
    "additionalProperties": "FormatViolation",
}


def error_code_for_schema_keyword(keyword: str) -> str:
    """The CALLERROR code for a payload refused by `keyword`; FormatViolation for the rest."""
    return ERROR_CODE_BY_SCHEMA_KEYWORD.get(keyword, "FormatViolation")
