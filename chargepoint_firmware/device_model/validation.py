"""Device model value rules: a value checked against its variable's data type and
characteristics (min/max, valuesList), and the validators of particular variables."""

from __future__ import annotations

import itertools
import json
import math
import re
from datetime import datetime

from chargepoint_firmware.device_model.definitions import DataType, InvalidValue, VariableDefinition

_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def normalise_value(definition: VariableDefinition, value: str) -> str:
    """The canonical string for `value`, or InvalidValue with a reason."""
    if not isinstance(value, str):
        raise InvalidValue("value must be a string")
    low, high = definition.min_limit, definition.max_limit
    data_type = definition.data_type
    if data_type in (DataType.INTEGER, DataType.DECIMAL):
        text = value.strip()
        pattern = _INTEGER if data_type is DataType.INTEGER else _DECIMAL
        if not pattern.match(text):
            raise InvalidValue(f"{value!r} is not a valid {data_type.value}")
        number = float(text)
        if not math.isfinite(number):
            raise InvalidValue(f"{value!r} is not finite")
        if (low is not None and number < low) or (high is not None and number > high):
            raise InvalidValue(f"{value} outside [{low}, {high}]")
        out = str(int(text)) if data_type is DataType.INTEGER else format_number(number)
    elif data_type is DataType.BOOLEAN:
        if value.lower() not in ("true", "false"):
            raise InvalidValue(f"{value!r} is not true or false")
        out = value.lower()
    elif data_type is DataType.DATETIME:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidValue(f"{value!r} is not an ISO 8601 date-time") from exc
        if parsed.tzinfo is None:
            raise InvalidValue("a dateTime needs a time zone (Z)")
        out = value
    elif data_type is DataType.OPTION_LIST:
        if definition.values_list is not None and value not in definition.values_list:
            raise InvalidValue(f"{value!r} not one of {','.join(definition.values_list)}")
        out = value
    elif data_type in (DataType.MEMBER_LIST, DataType.SEQUENCE_LIST):
        members = [m.strip() for m in value.split(",")] if value.strip() else []
        allowed = definition.values_list
        unknown = [m for m in members if allowed is not None and m not in allowed]
        if unknown:
            raise InvalidValue(f"{','.join(unknown)} not in {','.join(allowed or ())}")
        if len(set(members)) != len(members):
            raise InvalidValue("members repeat")
        out = ",".join(members)
    else:  # string: min/max limit are lengths
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            raise InvalidValue(f"length {len(value)} outside [{low}, {high}]")
        out = value
    return out


def freq_watt_curve_error(value: str, _current: str | None = None) -> str | None:
    """V2XCtrlr.FreqWattCurve: a JSON list of 2-20 [Hz, W] points, Hz strictly increasing."""
    try:
        points = json.loads(value)
    except ValueError:
        return "not JSON"
    if not isinstance(points, list) or not 2 <= len(points) <= 20:
        return "needs 2 to 20 points"
    for point in points:
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                for x in point
            )
        ):
            return "each point is [Hz, W]"
        if not 40.0 <= point[0] <= 70.0:
            return f"frequency {point[0]} Hz outside 40..70"
    if any(b[0] <= a[0] for a, b in itertools.pairwise(points)):
        return "frequencies must strictly increase"
    return None


def not_negative(value: str, _current: str | None) -> str | None:
    return "must not be negative" if float(value) < 0 else None


def no_downgrade(value: str, current: str | None) -> str | None:
    if current is not None and int(value) < int(current):
        return f"security profile cannot be lowered from {current} to {value}"
    return None
