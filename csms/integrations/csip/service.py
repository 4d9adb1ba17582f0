"""Starting the CSIP-AUS aggregator client from the CSMS's settings (csms/app.py).

`start_csip(...)` returns the running poller, or None when `csip_enabled` is off. A
configuration that would expose the aggregator identity (certificate header off loopback) or
lacks its certificate fails the start (TransportRefused / OSError), like a bad TLS setting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Protocol

from csms.domain.station_ratings import RatingFallback
from csms.integrations.csip.client import CsipSiteClient, Db, PollBounds
from csms.integrations.csip.notifications import CsipSubscriptions
from csms.integrations.csip.poller import CsipPoller, StationsSiteSource
from csms.integrations.csip.site_extras import CsipSiteExtras
from csms.integrations.csip.telemetry import CsipTelemetry, TelemetrySettings
from csms.integrations.csip.telemetry import Db as TelemetryDb
from csms.integrations.csip.transport import CsipTransport, TransportConfig


class CsipSettings(Protocol):
    """The csip_* fields of csms.settings.Settings."""

    csip_enabled: bool
    csip_server_url: str | None
    csip_cert_file: Path | None
    csip_key_file: Path | None
    csip_ca_file: Path | None
    csip_cert_header_mode: bool
    csip_pen: int
    csip_poll_min_s: int
    csip_poll_max_s: int
    csip_retry_s: int
    csip_tick_s: float
    csip_lease_s: float
    csip_timeout_s: float
    csip_max_response_bytes: int
    csip_comm_loss_timeout_s: int | None
    csip_notify_base_url: str | None


def build_csip(
    settings: CsipSettings,
    db: Db,
    *,
    node_id: str,
    clock: Callable[[], datetime],
    connected_ids: Callable[[], Collection[str]],
    power_w: Callable[[str], float | None],
    on_envelopes_changed: Callable[[str], Awaitable[None]] | None = None,
    rating_fallback: RatingFallback | None = None,
) -> CsipPoller | None:
    """`rating_fallback`: a station's rating when it reported none; give the envelope
    service's (`EnvelopeService.rating_fallback`) so both report one rating per station."""
    if not settings.csip_enabled:
        return None
    if settings.csip_server_url is None or settings.csip_cert_file is None:
        raise ValueError("csip_enabled needs csip_server_url and csip_cert_file")
    transport = CsipTransport(
        TransportConfig.from_files(
            settings.csip_server_url,
            settings.csip_cert_file,
            settings.csip_key_file,
            settings.csip_ca_file,
            cert_header_mode=settings.csip_cert_header_mode,
            timeout_s=settings.csip_timeout_s,
            max_response_bytes=settings.csip_max_response_bytes,
        )
    )
    source = StationsSiteSource(
        connected_ids,
        power_w,
        db=db,
        fallback=rating_fallback or RatingFallback(),
    )
    client = CsipSiteClient(
        transport,
        db,
        source,
        on_envelopes_changed=on_envelopes_changed,
        clock=clock,
        bounds=PollBounds(
            settings.csip_poll_min_s, settings.csip_poll_max_s, settings.csip_retry_s
        ),
        pen=settings.csip_pen,
        comm_loss_timeout_s=settings.csip_comm_loss_timeout_s,
    )
    # Telemetry at the server's postRate; subscriptions only with a notification URL (the
    # notifications then reach csms/app.py's route, which wakes this poller).
    # (the same Database; telemetry's protocol spells out read()'s context manager)
    tdb: TelemetryDb = db  # type: ignore[assignment]
    telemetry = CsipTelemetry(transport, tdb, TelemetrySettings(pen=settings.csip_pen))
    subscriptions = (
        CsipSubscriptions(transport, tdb, settings.csip_notify_base_url)
        if settings.csip_notify_base_url
        else None
    )
    return CsipPoller(
        client,
        db,
        node_id,
        clock=clock,
        tick_s=settings.csip_tick_s,
        lease_s=settings.csip_lease_s,
        extras=CsipSiteExtras(tdb, telemetry, subscriptions, clock=clock),
    )
