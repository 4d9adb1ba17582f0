"""The websocket connection to the CSMS: subprotocol, credentials, TLS, and the back-off rules.

`connect(settings, password, ssl_context)` opens one connection (security profiles 1-3);
`retry_backoff_delay` is the OCPP 2.0.1 reconnect back-off (OCPPCommCtrlr.RetryBackOff*),
`backoff_delay` the capped exponential one of the lab settings, `retry_after` reads HTTP 429's
header, and `handshake_diagnosis` says what an HTTP refusal of the upgrade most likely means.
"""

from __future__ import annotations

import math
import random
import ssl
from base64 import b64encode

from websockets.asyncio.client import ClientConnection, connect

from chargepoint_firmware.settings import StationSettings
from v2g_shared.ocpp_versions import OcppVersion

SUBPROTOCOL = OcppVersion.V201.value  # the default offer


def offered_subprotocols(settings: StationSettings) -> list[str]:
    """Sec-WebSocket-Protocol values in preference order (settings.ocpp_versions)."""
    return [v.value for v in settings.ocpp_versions]


def negotiated_version(settings: StationSettings, subprotocol: str | None) -> OcppVersion | None:
    """The version the CSMS chose, or None when it chose nothing we offered (OCPP-J Part 4:
    the station must then close the connection)."""
    for version in settings.ocpp_versions:
        if subprotocol == version.value:
            return version
    return None


def retry_backoff_delay(
    attempt: int,
    *,
    wait_minimum_s: float,
    random_range_s: float,
    repeat_times: int,
    rng: random.Random,
) -> float:
    """OCPP 2.0.1 reconnect back-off (OCPPCommCtrlr.RetryBackOff*): the minimum wait doubles on
    each attempt, at most `repeat_times` times, plus a random part in [0, random_range_s]."""
    doublings = max(0, min(attempt, repeat_times))
    return max(0.0, wait_minimum_s) * 2.0**doublings + rng.uniform(0, max(0.0, random_range_s))


def backoff_delay(attempt: int, minimum: float, maximum: float, rng: random.Random) -> float:
    """Exponential back-off with "equal jitter": half fixed, half random, capped at `maximum`."""
    ceiling = min(maximum, minimum * (2.0 ** min(attempt, 30)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def auth_failure_delay(streak: int, cap_s: float, rng: random.Random) -> float:
    """Back-off while credentials are refused: 30 s doubling, capped, jittered 50-100 %."""
    return min(cap_s, 30.0 * 2.0 ** min(streak, 16)) * rng.uniform(0.5, 1.0)


def retry_after(exc: Exception, fallback: float) -> float:
    """HTTP 429's Retry-After in seconds, bounded to 1..3600 s; `fallback` when absent."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After", "") if response is not None else ""
    try:
        seconds = float(value.strip()[:10])
    except ValueError:
        return fallback
    return min(max(seconds, 1.0), 3600.0) if math.isfinite(seconds) else fallback


def handshake_diagnosis(settings: StationSettings, status: int) -> str | None:
    """What an HTTP refusal of the WebSocket upgrade most likely means (issue 12 #3)."""
    where = f"station id {settings.station_id!r}, security profile {settings.security.profile}"
    if status in (401, 403):
        return (
            f"the CSMS refused the credentials (HTTP {status}) for {where}: check "
            "BasicAuthPassword / station id / security profile (and the client certificate "
            "for profile 3)"
        )
    if status == 404:
        return (
            f"the CSMS does not know this station (HTTP 404) for {where}: check the "
            "station id and the path of csms_url"
        )
    if status == 400:
        offered = ", ".join(offered_subprotocols(settings))
        return f"the CSMS refused the handshake (HTTP 400): check the subprotocol ({offered})"
    return None


def basic_auth_headers(settings: StationSettings, password: str | None) -> dict[str, str]:
    if settings.security.profile in (1, 2) and password:
        token = f"{settings.station_id}:{password}".encode()
        return {"Authorization": "Basic " + b64encode(token).decode()}
    return {}


def client_ssl_context(settings: StationSettings) -> ssl.SSLContext | None:
    sec = settings.security
    if not settings.csms_url.startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=str(sec.ca_file) if sec.ca_file else None)
    if sec.profile == 3 and sec.client_cert_file and sec.client_key_file:
        context.load_cert_chain(str(sec.client_cert_file), str(sec.client_key_file))
    return context


async def open_connection(
    settings: StationSettings, password: str | None, ssl_context: ssl.SSLContext | None
) -> ClientConnection:
    s = settings
    return await connect(
        s.station_url,
        subprotocols=offered_subprotocols(s),  # type: ignore[arg-type]
        additional_headers=basic_auth_headers(s, password),
        ssl=ssl_context if ssl_context is not None else client_ssl_context(s),
        ping_interval=s.ping_interval_s,
        ping_timeout=s.ping_timeout_s,
        open_timeout=max(s.message_timeout_s, 1.0),
        close_timeout=2.0,
        max_size=2**22,
    )
