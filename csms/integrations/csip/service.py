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

from csms.integrations.csip.client import CsipSiteClient, Db, PollBounds
from csms.integrations.csip.poller import CsipPoller, StationsSiteSource
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
    csip_station_max_charge_w: float
    csip_station_max_discharge_w: float


def build_csip(
    settings: CsipSettings,
    db: Db,
    *,
    node_id: str,
    clock: Callable[[], datetime],
    connected_ids: Callable[[], Collection[str]],
    power_w: Callable[[str], float | None],
    on_envelopes_changed: Callable[[str], Awaitable[None]] | None = None,
) -> CsipPoller | None:
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
        station_max_charge_w=settings.csip_station_max_charge_w,
        station_max_discharge_w=settings.csip_station_max_discharge_w,
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
    return CsipPoller(
        client,
        db,
        node_id,
        clock=clock,
        tick_s=settings.csip_tick_s,
        lease_s=settings.csip_lease_s,
    )
