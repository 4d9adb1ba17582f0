"""Issue 18's DONE-WHEN, end to end on loopback: a simulated home discharging its car into an
evening peak obeys a new export envelope from envoy within a measured time and reports it back
as telemetry.

envoy 1.5.0 (real, tests/support/csip_server.py) -> the CSMS as the aggregator's CSIP-AUS client
(csms.app.start, certificate header on loopback) -> SetChargingProfile 62007 -> the agent ->
CHAdeMO over a python-can virtual bus -> a simulated Leaf discharging 5 kW (TxProfile -5000 W).
A DNSP control (export 2000 W) is added in envoy's admin API; the station's 0x208 discharge
current must fall within 2000 W at the charger's measured voltage (0x109), and the site's
telemetry posted to envoy (MirrorUsagePoints, postRate 60 s) must show the export at or below
2 kW. Both paths by which the control reaches the CSMS (tests/support/csip_chain.py): envoy's
poll rate (10 s), and a notification (poll rates 900 s).

Needs CSMS_TEST_POSTGRES_URL (envoy's database); skips without it. About 3-4 minutes per path
(the telemetry waits for whole-minute periods).
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from csms.persistence.csip_telemetry_tables import csip_subscriptions
from tests.support.csip_chain import (
    PEAK_EXPORT_W,
    POLL_PATH_RATE_S,
    SITE_ID,
    CsipHome,
    csip_home,
    utcnow,
)
from tests.support.csip_server import running_envoy, venv_and_postgres_or_skip
from tests.support.e2e_stack import until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

EXPORT_LIMIT_W = 2000.0
TELEMETRY_WAIT_S = 200.0  # a whole 60 s period after the change, posted 2 s after it ends


def value(reading: dict[str, Any]) -> Decimal:
    return Decimal(str(reading["value"]))


def period_start(reading: dict[str, Any]) -> dt.datetime:
    start = dt.datetime.fromisoformat(str(reading["reading_start_time"]))
    return start if start.tzinfo else start.replace(tzinfo=dt.UTC)


async def readings_after(home: CsipHome, begin: dt.datetime, what: str) -> list[dict[str, Any]]:
    """envoy's active-power readings of the site for periods starting at or after `begin`."""

    async def check() -> list[dict[str, Any]] | None:
        got = await home.readings_w(begin - dt.timedelta(minutes=5), utcnow())
        fresh = [r for r in got if period_start(r) >= begin]
        return fresh or None

    return await until(check, TELEMETRY_WAIT_S, what)


async def obeys_a_new_export_envelope(home: CsipHome, within_s: float) -> None:
    started = utcnow()
    # Before: a whole period of the peak discharge reaches envoy (site and DER, "positive =
    # import": about -5000 W).
    before = await readings_after(
        home, started.replace(second=0, microsecond=0) + dt.timedelta(minutes=1), "peak readings"
    )
    assert all(value(r) <= Decimal(-0.8 * PEAK_EXPORT_W) for r in before), before

    reaction = await home.new_export_envelope(EXPORT_LIMIT_W, 600, within_s=within_s + 30)
    print(
        f"\n{home.path}: envoy admin change -> profile accepted "
        f"{reaction.profile_accepted_s:.2f} s, -> 0x208 within {EXPORT_LIMIT_W:.0f} W "
        f"{reaction.can_within_limit_s:.2f} s"
    )
    assert reaction.can_within_limit_s < within_s
    assert reaction.profile_accepted_s < within_s

    # It stays within the limit, and the car still exports (limited, not stopped).
    held_from = reaction.can_at
    await until(lambda: _later(held_from + 5), 10, "5 s of discharge after the change")
    bound = home.bound_a(EXPORT_LIMIT_W)
    amps = [a for _, a in home.discharge(held_from)]
    assert amps and max(amps) <= bound, (max(amps), bound)
    assert amps[-1] >= 2, "the envelope limits the export; it does not stop it"
    view = (await home.stack.api.get(f"/sites/{SITE_ID}/envelope")).json()
    assert view["in_force"]["source"] == "csip-aus"
    assert view["in_force"]["export_limit_w"] == EXPORT_LIMIT_W
    assert view["stations"][0]["max_discharge_w"] <= EXPORT_LIMIT_W

    # After: the first whole period after the current fell reaches envoy within the limit.
    can_wall = reaction.changed_at + dt.timedelta(seconds=reaction.can_within_limit_s)
    after = await readings_after(
        home,
        can_wall.replace(second=0, microsecond=0) + dt.timedelta(minutes=1),
        "reduced readings",
    )
    assert all(
        Decimal(-1.05 * EXPORT_LIMIT_W) <= value(r) <= Decimal(-0.3 * EXPORT_LIMIT_W) for r in after
    ), after


async def _later(moment: float) -> bool:
    return time.monotonic() >= moment


async def test_poll_path_a_new_export_envelope_reaches_the_car_and_the_telemetry(
    tmp_path: Path,
) -> None:
    venv, url = venv_and_postgres_or_skip()
    async with (
        running_envoy(venv, url, tmp_path / "envoy") as envoy,
        csip_home(tmp_path / "home", envoy, path="poll") as home,
    ):
        # envoy's DERProgram pollRate is 10 s: the control is read within it.
        await obeys_a_new_export_envelope(home, within_s=POLL_PATH_RATE_S + 15)


async def test_notification_path_a_new_export_envelope_reaches_the_car_and_the_telemetry(
    tmp_path: Path,
) -> None:
    venv, url = venv_and_postgres_or_skip()
    async with (
        running_envoy(venv, url, tmp_path / "envoy") as envoy,
        csip_home(tmp_path / "home", envoy, path="notification") as home,
    ):
        # The poll rates are 900 s: only the notification can bring the control this soon.
        await obeys_a_new_export_envelope(home, within_s=30)
        assert home.stack.csms is not None
        async with home.stack.csms.services.db.read() as conn:
            served = (
                await conn.execute(sa.select(sa.func.sum(csip_subscriptions.c.notifications)))
            ).scalar_one()
        assert served and served >= 1
