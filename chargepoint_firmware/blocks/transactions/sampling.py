"""Meter values on a timer (J01/J02): each transaction's sampled data, timed from its own start,
and clock-aligned meter values every AlignedDataCtrlr.Interval (from midnight UTC)."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta

from chargepoint_firmware.blocks.transactions.manager import TransactionManager
from chargepoint_firmware.ocpp_edge.outbox import Outbox
from chargepoint_firmware.ocpp_edge.timefmt import parse_iso
from chargepoint_firmware.station.clock import Clock
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.station.waits import ConfigChanges, sleep_or_wake
from chargepoint_firmware.storage import AgentStorage


def next_boundary(start: datetime, interval_s: int, now: datetime) -> datetime:
    """The first start + k * interval_s (k >= 1) strictly after `now`."""
    elapsed = (now - start).total_seconds()
    k = max(1, math.floor(elapsed / interval_s) + 1)
    return start + timedelta(seconds=k * interval_s)


class Sampling:
    def __init__(
        self,
        *,
        evse_ids: list[int],
        transactions: TransactionManager,
        config: ConfigView,
        clock: Clock,
        changes: ConfigChanges,
        storage: AgentStorage,
        outbox: Outbox,
    ) -> None:
        self.evse_ids = list(evse_ids)
        self.transactions = transactions
        self.config = config
        self.clock = clock
        self.changes = changes
        self.storage = storage
        self.outbox = outbox
        self._wake: asyncio.Event | None = None  # made in run_sampler (the running loop's)

    def wake(self) -> None:
        """A sampling interval changed, or a transaction started or ended: recompute."""
        if self._wake is not None:
            self._wake.set()

    async def run_sampler(self) -> None:
        """Sampled data of each transaction, timed from its own start (J02).

        Every TxUpdatedInterval s after the start: TransactionEvent(Updated, MeterValuePeriodic).
        Every TxEndedInterval s after the start: a TxEndedMeasurands sample kept for the Ended
        event's meterValue list. A change of either interval, or a transaction starting or
        ending, wakes the loop to recompute the next due time.
        """
        self._wake = wake = asyncio.Event()
        # (evse id, transaction id, variable) -> (interval it was computed with, next due time)
        due: dict[tuple[int, str, str], tuple[int, datetime]] = {}
        while True:
            wake.clear()
            now = self.clock.now()
            next_times: list[datetime] = []
            live: set[tuple[int, str, str]] = set()
            for evse_id, st in list(self.transactions.evses.items()):
                if st.tx_id is None or st.tx_started_at is None:
                    continue
                start = parse_iso(st.tx_started_at)
                for variable in ("TxUpdatedInterval", "TxEndedInterval"):
                    interval = self.config.integer("SampledDataCtrlr", variable)
                    if interval <= 0 or st.tx_id is None:
                        continue
                    key = (evse_id, st.tx_id, variable)
                    live.add(key)
                    known = due.get(key)
                    if known is None:  # a new transaction: its first boundary, even if passed
                        at = start + timedelta(seconds=interval)
                    elif known[0] != interval:  # interval changed: next boundary of the new one
                        at = next_boundary(start, interval, now)
                    else:
                        at = known[1]
                    if at <= now:
                        if variable == "TxUpdatedInterval":
                            self.transactions.sample(evse_id)
                        else:
                            self.transactions.record_ended_sample(evse_id)
                        at = next_boundary(start, interval, now)
                    due[key] = (interval, at)
                    next_times.append(at)
            for key in set(due) - live:
                del due[key]
            deadline = min(next_times, default=now + timedelta(days=1))
            await sleep_or_wake(self.clock, deadline, wake)

    async def run_aligned(self) -> None:
        """Clock-aligned meter values every AlignedDataCtrlr.Interval (from midnight UTC)."""
        while True:
            interval = self.config.integer("AlignedDataCtrlr", "Interval")
            now = self.clock.now()
            if interval <= 0:
                await self.changes.sleep(now + timedelta(days=1))
                continue
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            elapsed = (now - midnight).total_seconds()
            boundary = midnight + timedelta(seconds=(int(elapsed // interval) + 1) * interval)
            await self.changes.sleep(boundary)
            if self.clock.now() < boundary:
                continue  # configuration changed: recompute the boundary
            idle_too = self.config.boolean("AlignedDataCtrlr", "SendDuringIdle")
            for evse_id in self.evse_ids:
                if (
                    not self.transactions.sample(evse_id, "MeterValueClock", "Sample.Clock")
                    and idle_too
                ):
                    payload = self.transactions.meter_values_message(evse_id, "Sample.Clock")
                    if payload is not None:
                        with self.storage.atomic():
                            self.outbox.put("MeterValues", payload)
