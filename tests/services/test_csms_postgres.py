"""PostgreSQL: migrations up and down, and the OCPP path end to end on asyncpg."""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp.v201 import call

from csms.domain.models import TransactionState
from csms.persistence import migrate
from csms.persistence.tables import CORE_TABLES
from tests.integration.test_csms_migrations import (
    ADDED_TO_CORE_LATER,
    _added_columns,
    full_schema_diff,
    schema_diff,
    table_names,
)
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.csms_harness import connect_station, running_csms
from tests.support.csms_payloads import tx_event

pytestmark = pytest.mark.postgres


async def test_every_revision_up_and_down_postgres() -> None:
    base = postgres_url_or_skip()
    async with fresh_postgres_database(base) as url:
        await migrate.upgrade_async(url, "0001")
        assert await table_names(url) == CORE_TABLES
        assert _added_columns(await schema_diff(url)) == ADDED_TO_CORE_LATER
        await migrate.upgrade_async(url)
        assert await table_names(url) >= CORE_TABLES
        assert await schema_diff(url) == []
        assert await full_schema_diff(url) == []  # head: core and V2G tables as defined
        await migrate.downgrade_async(url, "0001")
        assert await table_names(url) == CORE_TABLES
        await migrate.downgrade_async(url, "base")
        assert await table_names(url) == set()
        await migrate.upgrade_async(url)
        assert await table_names(url) >= CORE_TABLES


async def test_ocpp_transaction_on_postgres(tmp_path: Path) -> None:
    base = postgres_url_or_skip()
    async with (
        fresh_postgres_database(base) as url,
        running_csms(tmp_path, database_url=url) as csms,
    ):
        await csms.add_station("PG1")
        await csms.services.tariffs.set("PG1", currency="AUD", price_per_kwh=0.25)
        async with connect_station(csms, "PG1") as conn:
            boot = await conn.station.call(
                call.BootNotification(
                    charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
                ),
                suppress=False,
            )
            assert boot.status == "Accepted"
            for payload in (
                tx_event("Started", 0, energy_wh=0),
                tx_event("Updated", 1, energy_wh=4000),
                tx_event("Updated", 1, energy_wh=4000),  # retry
                tx_event("Ended", 2, energy_wh=8000),
            ):
                answer = await conn.station.call(
                    call.TransactionEvent(
                        event_type=payload["eventType"],
                        timestamp=payload["timestamp"],
                        trigger_reason=payload["triggerReason"],
                        seq_no=payload["seqNo"],
                        transaction_info=payload["transactionInfo"],
                        evse=payload["evse"],
                        meter_value=payload.get("meterValue"),
                    ),
                    suppress=False,
                )
        assert answer.total_cost == pytest.approx(2.0)
        detail = await csms.services.transactions.get("PG1", "TX1")
        assert detail.transaction.state is TransactionState.ENDED
        assert [e.seq_no for e in detail.events] == [0, 1, 2]
        assert [s.value for s in detail.meter_values] == [0, 4000, 8000]
        token = await csms.services.api_tokens.create("pg")
        assert await csms.services.api_tokens.verify(token.plaintext) is not None
