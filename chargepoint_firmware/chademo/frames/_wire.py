"""Byte-level helpers shared by the frame modules: field checks, little-endian words,
times in 10 s / 1 min steps, flag bits; and `FrameDecodeError`."""

from __future__ import annotations

from typing import Final

_U8: Final = 0xFF
_U16: Final = 0xFFFF
_TEN_S_UNUSED: Final = 0xFF  # "use the 1 min/bit byte instead"


class FrameDecodeError(ValueError):
    """Bytes that are not a valid frame, or a field value a frame cannot carry."""


def _check_int(frame: object, name: str, value: object, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameDecodeError(f"{type(frame).__name__}.{name} must be an int, got {value!r}")
    if not 0 <= value <= maximum:
        raise FrameDecodeError(f"{type(frame).__name__}.{name}={value} outside 0..{maximum}")


def _check_bool(frame: object, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise FrameDecodeError(f"{type(frame).__name__}.{name} must be a bool, got {value!r}")


def _check_bits(frame: object, name: str, value: object, allowed_mask: int) -> None:
    _check_int(frame, name, value, _U8)
    assert isinstance(value, int)
    if value & ~allowed_mask:
        raise FrameDecodeError(
            f"{type(frame).__name__}.{name}={value:#04x}: only bits {allowed_mask:#04x} allowed"
        )


def _check_wh(frame: object, name: str, value: object) -> None:
    _check_int(frame, name, value, _U16 * 100)
    assert isinstance(value, int)
    if value % 100:
        raise FrameDecodeError(f"{type(frame).__name__}.{name}={value} Wh: not a multiple of 100")


def _check_seconds(frame: object, name: str, value: object) -> None:
    """A time carried as 10 s/bit (<= 2540 s) or 1 min/bit (<= 255 min)."""
    _check_int(frame, name, value, _U8 * 60)
    assert isinstance(value, int)
    fits_10s = value % 10 == 0 and value // 10 < _TEN_S_UNUSED
    if not fits_10s and value % 60:
        raise FrameDecodeError(
            f"{type(frame).__name__}.{name}={value} s: not representable in 10 s or 1 min steps"
        )


def _u16(data: bytes, index: int) -> int:
    return data[index] | (data[index + 1] << 8)


def _put_u16(buffer: bytearray, index: int, value: int) -> None:
    buffer[index] = value & 0xFF
    buffer[index + 1] = value >> 8


def _decode_seconds(ten_s_byte: int, minute_byte: int) -> int:
    if ten_s_byte == _TEN_S_UNUSED:
        return minute_byte * 60
    return ten_s_byte * 10


def _encode_seconds(seconds: int) -> tuple[int, int]:
    """(10 s byte, 1 min byte); the minute byte also carries the value, rounded up."""
    minutes = min(_U8, -(-seconds // 60))
    if seconds % 10 == 0 and seconds // 10 < _TEN_S_UNUSED:
        return seconds // 10, minutes
    return _TEN_S_UNUSED, seconds // 60


def _bit(value: int, bit: int) -> bool:
    return bool(value >> bit & 1)


def _flags(*bits: bool) -> int:
    """Pack booleans: first argument is bit 0."""
    return sum(int(flag) << index for index, flag in enumerate(bits))
