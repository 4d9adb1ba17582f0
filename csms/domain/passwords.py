"""Station password rules (pure). SecurityCtrlr.BasicAuthPassword is an OCPP passwordString
of 16 to 40 characters (OCPP 2.0.1 Part 2, A00.FR.205)."""

from __future__ import annotations

PASSWORD_MIN, PASSWORD_MAX = 16, 40


def password_length_ok(password: str) -> bool:
    """True if `password` has an allowed length for a station's Basic-auth password."""
    return PASSWORD_MIN <= len(password) <= PASSWORD_MAX
