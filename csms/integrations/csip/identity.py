"""IEEE 2030.5 device identifiers (pure).

The LFDI is the first 160 bits of the SHA-256 of the certificate (DER), as 40 hex digits; the
SFDI is the first 36 bits of the LFDI as a decimal number followed by a sum-of-digits check
digit (IEEE 2030.5-2018 6.3.3: LFDI 3E4F45AB31EDFE5B67E343E5E4562E31984E23E5 -> SFDI
167261211391).

An aggregator registers each site as an EndDevice with an LFDI of its own. CSIP-AUS expects an
aggregator's device LFDIs to end in the aggregator's IANA Private Enterprise Number (PEN) as 8
decimal digits (the CACTUS check `end-device-contents`); `site_lfdi` derives a stable one from the
aggregator's LFDI and the site id, so a site gets the same identity on every node and restart.
"""

from __future__ import annotations

import hashlib
import re

LFDI_HEX_DIGITS = 40
MAX_PEN = 99_999_999  # 8 decimal digits
_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s+([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----"
)


def der_of_pem(pem: bytes | str) -> bytes:
    """The DER bytes of the first certificate in `pem`."""
    import base64

    data = pem.encode() if isinstance(pem, str) else pem
    match = _PEM_BLOCK.search(data)
    if match is None:
        raise ValueError("no PEM certificate")
    return base64.b64decode(b"".join(match.group(1).split()), validate=True)


def lfdi_of_certificate(der: bytes) -> str:
    """The LFDI of a DER certificate: 40 upper-case hex digits."""
    return hashlib.sha256(der).hexdigest()[:LFDI_HEX_DIGITS].upper()


def sfdi_check_digit(raw: int) -> int:
    """The digit that makes the sum of the digits of raw*10+digit a multiple of 10."""
    return (10 - sum(int(d) for d in str(raw)) % 10) % 10


def sfdi_of_lfdi(lfdi: str) -> int:
    if not re.fullmatch(r"[0-9A-Fa-f]{40}", lfdi):
        raise ValueError("an LFDI is 40 hex digits")
    raw = int(lfdi[:9], 16)  # 9 hex digits = 36 bits
    return raw * 10 + sfdi_check_digit(raw)


def site_lfdi(aggregator_lfdi: str, site_id: str, pen: int) -> str:
    """A stable LFDI for a site the aggregator registers: 32 hex digits of SHA-256 over the
    aggregator's LFDI and the site id, then the PEN as 8 decimal digits."""
    if not 0 <= pen <= MAX_PEN:
        raise ValueError(f"PEN: 0..{MAX_PEN}")
    digest = hashlib.sha256(f"csip-site\0{aggregator_lfdi.upper()}\0{site_id}".encode())
    return digest.hexdigest()[:32].upper() + f"{pen:08d}"


def pin_with_check_digit(pin5: int) -> int:
    """A 5-digit registration PIN with its check digit (CSIP-AUS: 11111 -> 111115)."""
    if not 0 <= pin5 <= 99_999:
        raise ValueError("a PIN is 5 digits before its check digit")
    return pin5 * 10 + sfdi_check_digit(pin5)
