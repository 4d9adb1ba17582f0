"""Meter-value pages answered from plain dicts (csms/api/meter_json.py, PackedPage.fields) are
byte for byte what FastAPI answers for the same page through pydantic (issue 17): generated
stored rows with awkward floats, numbers spelled as other writers spell them, missing fields,
unicode and control characters, measurand filters and page cuts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.api.meter_json import page_response
from csms.api.schemas import MeterValueRead, PageRead, page_read
from csms.domain.models import MeterSample, Page
from csms.persistence.meter_packing import PackedPage

_page: dict[str, PackedPage] = {}
app = FastAPI()


@app.get("/pydantic", response_model=PageRead[MeterValueRead])
async def _through_pydantic() -> PageRead[MeterValueRead]:
    page = _page["page"]
    return page_read(MeterValueRead, Page(page.samples(), page.total, page.offset, page.limit))


@app.get("/fast", response_model=PageRead[MeterValueRead])
async def _fast() -> Response:
    page = _page["page"]
    return page_response(Page(page.fields(), page.total, page.offset, page.limit))


text = st.text(max_size=12)  # any code point but surrogates: control characters, emoji, quotes
optional_text = st.none() | text
MEASURANDS = ["SoC", "Energy.Active.Import.Register", "Voltage", 'q"uote', "é", ""]
value = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)  # a whole number stored without .0
    | st.sampled_from([0.0, -0.0, 1e-7, 5e-324, 1e16, 1.5e-5, 123456789012345.6, 1e15, 0.1])
)


@st.composite
def sampled_value(draw: st.DrawFn) -> list[Any]:
    fields = [draw(st.sampled_from(MEASURANDS) | text), draw(value)]
    fields += [draw(optional_text) for _ in range(draw(st.integers(0, 4)))]
    return fields


@st.composite
def stored_row(draw: st.DrawFn) -> tuple[Any, ...]:
    samples = draw(st.lists(sampled_value(), min_size=1, max_size=4))
    # orjson writes the rows; migration 0017 wrote PostgreSQL's or SQLite's number text.
    spelled = draw(st.sampled_from(["orjson", "python"]))
    if spelled == "orjson":
        packed = orjson.dumps(samples).decode()
    else:
        packed = json.dumps(samples, separators=(",", ":"), ensure_ascii=False)
    return (  # as PAGE_ROW orders a page's rows
        draw(text),
        draw(st.none() | st.integers(0, 2**31 - 1)),
        draw(optional_text),
        draw(st.datetimes(timezones=st.just(UTC))),
        packed,
        draw(st.integers(1, 10**9)),
    )


@st.composite
def packed_page(draw: st.DrawFn) -> PackedPage:
    rows = draw(st.lists(stored_row(), max_size=6))
    measurands = draw(st.none() | st.sampled_from(MEASURANDS).map(lambda m: frozenset((m,))))
    return PackedPage(
        rows,
        measurands,
        skip=draw(st.integers(0, 3)),
        total=draw(st.integers(0, 10**6)),
        offset=draw(st.integers(0, 10**6)),
        limit=draw(st.integers(1, 1000)),
    )


async def _both(page: PackedPage) -> tuple[httpx.Response, httpx.Response]:
    _page["page"] = page
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/pydantic"), await client.get("/fast")


def test_the_fast_page_is_pydantics_page_byte_for_byte() -> None:
    loop = asyncio.new_event_loop()

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(page=packed_page())
    def check(page: PackedPage) -> None:
        slow, fast = loop.run_until_complete(_both(page))
        assert slow.status_code == fast.status_code == 200
        assert fast.content == slow.content
        assert fast.headers["content-type"] == slow.headers["content-type"]
        assert fast.headers["content-length"] == slow.headers["content-length"]

    try:
        check()
    finally:
        loop.close()


def test_the_items_have_the_read_models_fields_in_its_order() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    packed = '[["SoC",50,"L1","Outlet","Sample.Periodic","Percent"],["Voltage",1e-7]]'
    row = ("S", 1, "T", at, packed, 7, "more columns may follow")
    page = PackedPage([row], None, 0, 2, 0, 50)
    (first, second) = page.fields()
    assert list(first) == list(MeterValueRead.model_fields)
    assert first["value"] == 50.0 and isinstance(first["value"], float)
    assert second["phase"] is second["unit"] is None
    sample = MeterSample(
        "S", at, 50.0, "SoC", 1, "T", "L1", "Outlet", "Sample.Periodic", "Percent", 7
    )
    assert page.samples()[0] == sample
    body = json.loads(page_response(Page(page.fields(), 2, 0, 50)).body)
    assert body["items"][0]["timestamp"] == "2026-01-01T00:00:00Z"
    assert body["items"][1]["value"] == 1e-7
