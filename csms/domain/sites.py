"""Sites (issue 18): a home or depot behind one grid connection point, holding stations.

A site is what a distribution network sees: one connection point (its NMI in Australia), one
operating envelope (csms/domain/envelopes.py). For CSIP-AUS it is one EndDevice the CSMS
registers as aggregator, identified by its LFDI/SFDI and checked with its registration PIN.
Pure: validation of what an operator enters, nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SITE_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LFDI_PATTERN = re.compile(r"^[0-9A-Fa-f]{40}$")
MAX_STATIONS_PER_SITE = 64
MAX_SFDI = 10**12 - 1  # 36 bits as decimal (<= 11 digits) plus the check digit


def nmi_checksum(nmi10: str) -> int:
    """AEMO's NMI checksum (National Metering Identifier Procedure, Appendix: the Luhn variant
    over the ASCII values of the 10 characters, doubling from the rightmost)."""
    total = 0
    double = True
    for char in reversed(nmi10.upper()):
        value = ord(char)
        if double:
            value *= 2
        total += sum(int(d) for d in str(value))
        double = not double
    return (10 - total % 10) % 10


def nmi_problem(nmi: str) -> str | None:
    """None when `nmi` is a well-formed NMI: 10 characters (digits and letters other than O and
    I), optionally followed by its checksum digit; else what is wrong."""
    if not re.fullmatch(r"[0-9A-HJ-NP-Z]{10}[0-9]?", nmi.upper()):
        return (
            "an NMI is 10 characters (digits, letters except O and I) and an optional "
            "checksum digit"
        )
    if len(nmi) == 11 and int(nmi[10]) != nmi_checksum(nmi[:10]):
        return f"NMI checksum digit should be {nmi_checksum(nmi[:10])}"
    return None


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    nmi: str | None = None  # the connection point, reported as the EndDevice's ConnectionPoint
    lfdi: str | None = None  # the site's EndDevice identity (40 hex digits)
    sfdi: int | None = None
    registration_pin: int | None = None  # the DNSP's PIN to check against the server's Registration
    csip_enabled: bool = False  # register and poll this site with the CSIP-AUS server
    station_ids: tuple[str, ...] = ()
    # The station whose own main meter (OCPP evse 0, location Inlet) is the site's household
    # meter (csms.domain.inlet_meter); None: readings are pushed (API, MQTT) or there are none.
    meter_station_id: str | None = None

    def __post_init__(self) -> None:
        if not SITE_ID_PATTERN.match(self.id):
            raise ValueError("site id: 1-64 of letters, digits, '.', '_', '-'")
        if not 1 <= len(self.name) <= 200:
            raise ValueError("site name: 1-200 characters")
        if self.nmi is not None and (problem := nmi_problem(self.nmi)):
            raise ValueError(problem)
        if self.lfdi is not None and not LFDI_PATTERN.match(self.lfdi):
            raise ValueError("lfdi: 40 hexadecimal digits")
        if self.sfdi is not None and not 0 < self.sfdi <= MAX_SFDI:
            raise ValueError(f"sfdi: 1..{MAX_SFDI}")
        if self.registration_pin is not None and not 0 <= self.registration_pin <= 999_999:
            raise ValueError("registration_pin: 0..999999 (5 digits and a check digit)")
        if len(self.station_ids) > MAX_STATIONS_PER_SITE:
            raise ValueError(f"a site holds at most {MAX_STATIONS_PER_SITE} stations")
        if len(set(self.station_ids)) != len(self.station_ids):
            raise ValueError("a station is listed twice")
        if self.meter_station_id is not None and self.meter_station_id not in self.station_ids:
            raise ValueError(
                "meter_source.station_id: the meter's station must be one of the site's"
            )
