"""Session context: where a vehicle stands now (SoC, transaction) and what it needs
(departure and target from the API, the EV, a prediction or the defaults)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from csms.domain.models import Transaction, TransactionState
from csms.domain.v2g_records import (
    VehicleRecord,
)
from csms.persistence import repositories as repo
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.profiles import (
    SOC,
)
from csms.services.v2g.records import (
    SessionContext,
)
from csms.services.v2g.rules import (
    departure_from_needs,
)
from csms.services.v2g.vehicles import VehiclesPart
from csms.v2g import (
    SessionRecord,
    predict_departure,
)

log = logging.getLogger(__name__)


class SessionsPart(VehiclesPart):
    async def session_context(self, record: VehicleRecord, now: datetime) -> SessionContext:
        tx: Transaction | None = None
        soc: float | None = None
        soc_source = "unknown"
        needs: list[tuple[str, datetime, dict[str, Any]]] = []
        history: list[Transaction] = []
        if record.station_id is not None:
            async with self._db.read() as conn:
                active = await repo.list_transactions(
                    conn, 0, 100, record.station_id, TransactionState.ACTIVE
                )
                candidates = [
                    t
                    for t in active.items
                    if record.evse_id is None or t.evse_id in (None, record.evse_id)
                ]
                tx = candidates[0] if candidates else None
                found = await vrepo.latest_measurand(
                    conn,
                    record.station_id,
                    SOC,
                    record.evse_id,
                    tx.transaction_id if tx is not None else None,
                )
                if found is None and tx is not None:
                    found = await vrepo.latest_measurand(
                        conn, record.station_id, SOC, record.evse_id
                    )
                if found is not None:
                    soc, soc_source = found[1] / 100.0, f"meter value at {found[0].isoformat()}"
                needs = await vrepo.latest_event(conn, record.station_id, ["NotifyEVChargingNeeds"])
                history = await vrepo.station_transactions(conn, record.station_id, record.evse_id)
        # 1. the API
        if record.departure is not None and record.departure > now:
            return SessionContext(
                record,
                soc,
                soc_source,
                record.departure,
                record.target_soc
                if record.target_soc is not None
                else self.settings.default_target_soc,
                "api",
                tx,
            )
        # 2. the EV (NotifyEVChargingNeeds of the running transaction's EVSE)
        for _kind, received, payload in needs:
            if record.evse_id is not None and payload.get("evseId") != record.evse_id:
                continue
            if tx is not None and tx.started_at is not None and received < tx.started_at:
                break  # from an earlier session
            departure, target = departure_from_needs(payload, record.capacity_kwh, soc)
            if departure is not None and departure > now:
                # The EV's word, not the user's: beyond the horizon, plan up to the horizon.
                departure = min(departure, now + timedelta(hours=self.settings.max_horizon_h))
                chosen = record.target_soc if record.target_soc is not None else target
                return SessionContext(
                    record,
                    soc,
                    soc_source,
                    departure,
                    chosen if chosen is not None else self.settings.default_target_soc,
                    "ev",
                    tx,
                )
            break
        # 3. predicted from this EVSE's own past sessions (SoC at plug-in/out from their
        # SoC meter values gives the SoC the likely trip needs)
        ended = [t for t in history if t.started_at is not None and t.ended_at is not None]
        bounds: dict[str, tuple[float, float]] = {}
        if ended and record.station_id is not None:
            async with self._db.read() as conn:
                bounds = await vrepo.soc_bounds_by_transaction(
                    conn, record.station_id, [t.transaction_id for t in ended]
                )
        past = [
            SessionRecord(
                t.started_at,
                t.ended_at,
                bounds[t.transaction_id][0] / 100.0 if t.transaction_id in bounds else None,
                bounds[t.transaction_id][1] / 100.0 if t.transaction_id in bounds else None,
            )
            for t in ended
            if t.started_at is not None and t.ended_at is not None
        ]
        prediction = predict_departure(past, now) if past else None
        target = (
            record.target_soc if record.target_soc is not None else self.settings.default_target_soc
        )
        if prediction is not None:
            if record.target_soc is None and prediction.needed_soc is not None:
                target = prediction.needed_soc
            return SessionContext(
                record,
                soc,
                soc_source,
                prediction.earliest if prediction.earliest > now else prediction.departure,
                target,
                "predicted",
                tx,
                prediction.confidence,
            )
        started = tx.started_at if tx is not None and tx.started_at is not None else now
        departure = started + timedelta(hours=self.settings.default_dwell_h)
        if departure <= now:
            departure = now + timedelta(hours=1)
        return SessionContext(record, soc, soc_source, departure, target, "default", tx)

    async def latest_power_kw(self, record: VehicleRecord) -> float:
        """Signed power (kW, + charge) from the latest Power.Active.Import/Export samples."""
        if record.station_id is None:
            return 0.0
        async with self._db.read() as conn:
            imp = await vrepo.latest_measurand(
                conn, record.station_id, "Power.Active.Import", record.evse_id
            )
            exp = await vrepo.latest_measurand(
                conn, record.station_id, "Power.Active.Export", record.evse_id
            )
        return ((imp[1] if imp else 0.0) - (exp[1] if exp else 0.0)) / 1000.0
