"""Price and site series: NEM and Ausgrid parsers on real files, and the simple CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from csms.v2g.prices import (
    AEST,
    NemTariff,
    PriceFileError,
    PriceSeries,
    parse_ausgrid_household,
    parse_nem_price_and_demand,
    parse_price_file,
    parse_simple_prices,
)

DATA = Path(__file__).parents[1] / "data" / "v2g"
AUG = DATA / "PRICE_AND_DEMAND_20240805-06_VIC1.csv"
OCT = DATA / "PRICE_AND_DEMAND_20241006-07_VIC1.csv"


def read(path: Path) -> str:
    return path.read_bytes().decode()


def test_real_nem_file_crlf_without_final_newline() -> None:
    raw = AUG.read_bytes()
    assert b"\r\n" in raw and not raw.endswith(b"\n")  # the file really is the awkward kind
    prices = parse_nem_price_and_demand(read(AUG))
    assert len(prices) == 576
    assert prices.interval == timedelta(minutes=5)
    # First SETTLEMENTDATE 2024/08/05 00:05 AEST is the END of the first interval.
    assert prices.start == datetime(2024, 8, 5, 0, 0, tzinfo=AEST)
    assert prices.start.tzinfo == UTC and prices.start.hour == 14  # 00:00 AEST = 14:00 UTC


def test_nem_rrp_becomes_c_per_kwh_with_margin_and_gst_on_import_only() -> None:
    prices = parse_nem_price_and_demand(read(AUG), NemTariff(retail_margin_c_kwh=15.0))
    # Row "2024/08/05 00:05:00 ... 279.94": RRP $279.94/MWh = 27.994 c/kWh wholesale.
    assert prices.import_c_kwh[0] == pytest.approx((27.994 + 15.0) * 1.1)
    assert prices.export_c_kwh[0] == pytest.approx(27.994)
    # The evening spike, SETTLEMENTDATE 17:40 (interval 17:35-17:40) RRP 16,893.41.
    spike = prices.index_at(datetime(2024, 8, 5, 17, 35, tzinfo=AEST))
    assert prices.export_c_kwh[spike] == pytest.approx(1689.341)


def test_nem_negative_prices_stay_negative() -> None:
    prices = parse_nem_price_and_demand(read(OCT))
    negatives = [p for p in prices.export_c_kwh if p < 0]
    assert len(negatives) >= 200
    assert min(prices.import_c_kwh) < 0


def test_nem_thirty_minute_file() -> None:
    text = (
        "REGION,SETTLEMENTDATE,TOTALDEMAND,RRP,PERIODTYPE\r\n"
        "VIC1,2018/01/01 00:30:00,4000,80.5,TRADE\r\n"
        "VIC1,2018/01/01 01:00:00,3900,-12.0,TRADE\r\n"
        "VIC1,2018/01/01 01:30:00,3800,100,TRADE"
    )
    prices = parse_nem_price_and_demand(text)
    assert prices.interval == timedelta(minutes=30)
    assert prices.start == datetime(2018, 1, 1, 0, 0, tzinfo=AEST)
    assert prices.export_c_kwh == pytest.approx((8.05, -1.2, 10.0))


def test_nem_gap_is_an_error_naming_the_row() -> None:
    text = (
        "REGION,SETTLEMENTDATE,TOTALDEMAND,RRP,PERIODTYPE\n"
        "VIC1,2024/01/01 00:05:00,1,1,TRADE\n"
        "VIC1,2024/01/01 00:10:00,1,1,TRADE\n"
        "VIC1,2024/01/01 00:20:00,1,1,TRADE\n"
    )
    with pytest.raises(PriceFileError, match="row 4"):
        parse_nem_price_and_demand(text)


def test_simple_csv_with_and_without_export() -> None:
    both = parse_simple_prices(
        "start,import_c_kwh,export_c_kwh\n2024-01-01T00:00Z,30,5\n2024-01-01T00:30Z,10,2\n"
    )
    assert both.interval == timedelta(minutes=30)
    assert both.export_c_kwh == (5.0, 2.0)
    same = parse_price_file("start,import_c_kwh\n2024-01-01T00:00Z,30\n2024-01-01T01:00Z,31\n")
    assert same.export_c_kwh == same.import_c_kwh == (30.0, 31.0)


def test_simple_csv_bad_number_names_the_line() -> None:
    with pytest.raises(PriceFileError, match="line 3"):
        parse_simple_prices("start,import_c_kwh\n2024-01-01T00:00Z,30\n2024-01-01T00:30Z,abc\n")


def test_window_and_concat() -> None:
    prices = parse_nem_price_and_demand(read(AUG))
    day1 = prices.window(prices.start, prices.start + timedelta(days=1))
    day2 = prices.window(prices.start + timedelta(days=1), prices.end)
    assert len(day1) == len(day2) == 288
    assert PriceSeries.concat([day2, day1]) == prices
    with pytest.raises(ValueError, match="do not join"):
        PriceSeries.concat([day1, day1])


def test_ausgrid_household_real_file() -> None:
    site = parse_ausgrid_household(
        (DATA / "ausgrid_customer12_2012-01-10_12_30min_kW.csv").read_text()
    )
    assert len(site) == 144
    assert site.interval == timedelta(minutes=30)
    assert site.start == datetime(2012, 1, 10, 0, 0, tzinfo=AEST)
    assert max(site.solar_kw) == pytest.approx(0.862)  # 2012-01-12 14:00
    assert site.solar_kw[0] == 0.0  # midnight
    # A forecast for a 2024 price day from the same local times of a real day.
    prices = parse_nem_price_and_demand(read(AUG))
    load, solar = site.day_profile(
        date(2012, 1, 12), prices.window(prices.start, prices.start + timedelta(days=1))
    )
    assert len(load) == 288
    assert solar[14 * 12] == pytest.approx(0.862)  # 14:00 local, 5-minute index 168
    assert solar[0] == 0.0
