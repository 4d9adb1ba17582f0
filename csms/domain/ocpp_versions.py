"""Which OCPP version a station speaks: the accepted versions (globally or per station, in
preference order) and the websocket subprotocol negotiation (OCPP-J Part 4, 3.1). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from v2g_shared.ocpp_versions import OcppVersion, parse_ocpp_version

# Default preference: 2.1 when the station offers it (native V2X), else 2.0.1.
DEFAULT_VERSIONS: tuple[OcppVersion, ...] = (OcppVersion.V21, OcppVersion.V201)


def parse_versions(items: str | Iterable[str]) -> tuple[OcppVersion, ...]:
    """ "ocpp2.1,ocpp2.0.1" or ["2.1", "2.0.1"] -> versions in that order. ValueError for an
    unknown version, a repeated one or an empty list."""
    parts = items.split(",") if isinstance(items, str) else list(items)
    versions = [parse_ocpp_version(p) for p in parts if p.strip()]
    if not versions:
        raise ValueError("at least one OCPP version is needed")
    if len(set(versions)) != len(versions):
        raise ValueError("an OCPP version is listed twice")
    return tuple(versions)


def format_versions(versions: Sequence[OcppVersion]) -> str:
    """The stored and displayed form: "ocpp2.1,ocpp2.0.1"."""
    return ",".join(v.value for v in versions)


def negotiate(offered: Iterable[str], accepted: Sequence[OcppVersion]) -> OcppVersion | None:
    """The first of `accepted` (our preference order) that the station offers; None if none.
    Subprotocol names are compared exactly (RFC 6455 tokens are case-sensitive)."""
    offered_set = set(offered)
    return next((v for v in accepted if v.value in offered_set), None)
