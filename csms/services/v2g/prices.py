"""Prices: stored intervals, NEM PRICE_AND_DEMAND uploads, the run the planner uses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from csms.domain.errors import InvalidRequest
from csms.domain.v2g_records import (
    PriceRow,
)
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.checks import bounded, in_time_range
from csms.services.v2g.core import V2gCore
from csms.services.v2g.rules import (
    series_from_rows,
)
from csms.v2g import (
    NemTariff,
    PriceSeries,
    parse_nem_price_and_demand,
)
from csms.v2g import bounds as b
from csms.v2g.prices import PriceFileError

log = logging.getLogger(__name__)


class PricesPart(V2gCore):
    async def put_prices(self, rows: Sequence[PriceRow]) -> int:
        if not rows:
            raise InvalidRequest("no price intervals given")
        if len(rows) > b.MAX_PRICE_INTERVALS:
            raise InvalidRequest(f"at most {b.MAX_PRICE_INTERVALS} price intervals at once")
        for k, row in enumerate(rows):
            bounded(row.interval_s, b.PRICE_INTERVAL_S, f"intervals[{k}].interval_s")
            bounded(row.import_c_kwh, b.PRICE_C_KWH, f"intervals[{k}].import_c_kwh")
            bounded(row.export_c_kwh, b.PRICE_C_KWH, f"intervals[{k}].export_c_kwh")
            in_time_range(row.interval_start, f"intervals[{k}].start")
        now = self._clock()
        return await self._db.write(lambda c: vrepo.save_prices(c, rows, now))

    async def get_prices(self, start: datetime | None, end: datetime | None) -> list[PriceRow]:
        for moment, name in ((start, "from"), (end, "to")):
            if moment is not None:
                in_time_range(moment, name)
        async with self._db.read() as conn:
            return await vrepo.list_prices(conn, start, end)

    async def upload_nem(
        self,
        text: str,
        *,
        region: str | None = None,
        retail_margin_c_kwh: float | None = None,
        gst_rate: float | None = None,
        export_offset_c_kwh: float | None = None,
        source: str = "nem",
    ) -> PriceSeries:
        s = self.settings
        margin = s.retail_margin_c_kwh if retail_margin_c_kwh is None else retail_margin_c_kwh
        gst = s.gst_rate if gst_rate is None else gst_rate
        offset = s.export_offset_c_kwh if export_offset_c_kwh is None else export_offset_c_kwh
        tariff = NemTariff(
            retail_margin_c_kwh=bounded(margin, b.TARIFF_ADDER_C_KWH, "retail_margin_c_kwh"),
            gst_rate=bounded(gst, b.GST_RATE, "gst"),
            export_offset_c_kwh=bounded(offset, b.TARIFF_ADDER_C_KWH, "export_offset_c_kwh"),
        )
        try:
            series = await asyncio.to_thread(parse_nem_price_and_demand, text, tariff, region)
        except PriceFileError as exc:
            raise InvalidRequest(str(exc)) from exc
        step = round(series.interval.total_seconds())
        rows = [
            PriceRow(start, step, imp, exp, source[:100])
            for start, imp, exp in zip(
                series.starts(), series.import_c_kwh, series.export_c_kwh, strict=True
            )
        ]
        await self.put_prices(rows)
        return series

    async def _prices_for(self, now: datetime, until: datetime) -> PriceSeries:
        async with self._db.read() as conn:
            rows = await vrepo.list_prices(conn, now, until + timedelta(days=1))
        try:
            return series_from_rows(rows, now)
        except ValueError as exc:  # stored before the price bounds existed
            raise InvalidRequest(f"stored prices: {exc}; PUT /api/v1/prices again") from exc
