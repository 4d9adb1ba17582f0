"""Persistence and services on SQLite: group commit, repositories, service rules."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.errors import AlreadyExists, InvalidRequest, NotFound, UnknownStation
from csms.domain.models import BootPolicy, IdTokenStatus, SecurityProfile
from csms.persistence import tables as t
from csms.services.container import Services
from tests.support.csms_harness import PASSWORD, running_services


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    async with running_services(tmp_path) as running:
        yield running


async def test_group_commit_batches_concurrent_writes(services: Services) -> None:
    writer = services.db.writer
    before_batches, before_ops = writer.batches_committed, writer.ops_committed
    await asyncio.gather(*(services.id_tokens.create(f"T{i}") for i in range(200)))
    assert writer.ops_committed - before_ops == 200
    assert writer.batches_committed - before_batches < 200  # several writes per commit
    assert (await services.id_tokens.list(limit=1000)).total == 200


async def test_group_commit_isolates_a_failing_write(services: Services) -> None:
    async def bad(conn: AsyncConnection) -> None:
        await conn.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))

    results = await asyncio.gather(
        services.id_tokens.create("A"),
        services.db.write(bad),
        services.id_tokens.create("B"),
        return_exceptions=True,
    )
    assert isinstance(results[1], Exception)
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
    assert {tok.id_token for tok in (await services.id_tokens.list()).items} == {"A", "B"}


async def test_write_is_committed_when_it_returns(services: Services, tmp_path: Path) -> None:
    await services.stations.create("CS1", password=PASSWORD)
    # A separate engine (another process, in effect) sees it at once.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'csms.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.stations.c.id)).scalars().all() == ["CS1"]
    engine.dispose()


async def test_stations_crud_and_password_rules(services: Services) -> None:
    station = await services.stations.create("CS1", password=PASSWORD)
    assert station.security_profile is SecurityProfile.BASIC_AUTH
    assert station.has_password
    with pytest.raises(AlreadyExists):
        await services.stations.create("CS1", password=PASSWORD)
    with pytest.raises(InvalidRequest):
        await services.stations.create("CS2", password="short")
    with pytest.raises(InvalidRequest):
        await services.stations.create("CS2")  # profile 1 needs a password
    with pytest.raises(InvalidRequest):
        await services.stations.create("a/b", password=PASSWORD)
    mtls = await services.stations.create("CS3", security_profile=SecurityProfile.TLS_CLIENT_CERT)
    assert not mtls.has_password
    updated = await services.stations.update(
        "CS1", boot_policy=BootPolicy.PENDING, security_profile=SecurityProfile.TLS_BASIC_AUTH
    )
    assert updated.boot_policy is BootPolicy.PENDING
    assert updated.security_profile is SecurityProfile.TLS_BASIC_AUTH
    page = await services.stations.list(offset=0, limit=1)
    assert page.total == 2 and [s.id for s in page.items] == ["CS1"]
    await services.stations.delete("CS1")
    with pytest.raises(UnknownStation):
        await services.stations.get("CS1")
    with pytest.raises(UnknownStation):
        await services.stations.delete("CS1")
    state = await services.stations.connection_state("CS3")
    assert not state.connected and state.node_id is None


async def test_password_stored_as_argon2_hash_only(services: Services, tmp_path: Path) -> None:
    await services.stations.create("CS1", password=PASSWORD)
    async with services.db.read() as conn:
        stored = (await conn.execute(sa.select(t.stations.c.password_hash))).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    auth = await services.stations.auth_info("CS1")
    assert auth is not None and auth[1] is not None
    stored_password = auth[1]
    assert stored_password.hash == stored
    assert stored_password.check and PASSWORD not in stored_password.check
    assert await services.stations.verify_password("CS1", PASSWORD, stored_password)
    assert not await services.stations.verify_password("CS1", "x" * 16, stored_password)


async def test_id_tokens(services: Services) -> None:
    await services.id_tokens.create("T1", "ISO14443", IdTokenStatus.ACCEPTED)
    changed = await services.id_tokens.set_status("T1", "ISO14443", IdTokenStatus.BLOCKED)
    assert changed.status is IdTokenStatus.BLOCKED
    assert (await services.id_tokens.authorize("T1", "ISO14443")).status is IdTokenStatus.BLOCKED
    with pytest.raises(NotFound):
        await services.id_tokens.set_status("T2", "ISO14443", IdTokenStatus.BLOCKED)
    with pytest.raises(InvalidRequest):
        await services.id_tokens.create("T3", "Passport")
    with pytest.raises(InvalidRequest):
        await services.id_tokens.create("T3", expires_at=datetime(2030, 1, 1))
    await services.id_tokens.delete("T1")
    assert (await services.id_tokens.list()).total == 0


async def test_api_tokens_plaintext_once_verify_revoke(services: Services) -> None:
    created = await services.api_tokens.create("ops")
    assert created.plaintext.startswith("csms_") and len(created.plaintext) > 40
    async with services.db.read() as conn:
        stored = (await conn.execute(sa.select(t.api_tokens.c.token_hash))).scalar_one()
    assert created.plaintext not in stored
    assert (await services.api_tokens.verify(created.plaintext)) == created.token
    assert await services.api_tokens.verify(created.plaintext + "x") is None
    await services.api_tokens.revoke(created.token.id)
    assert await services.api_tokens.verify(created.plaintext) is None
    with pytest.raises(NotFound):
        await services.api_tokens.revoke(created.token.id)
    second = await services.api_tokens.create("ops")
    assert await services.api_tokens.revoke_named("ops") == 1
    assert await services.api_tokens.verify(second.plaintext) is None
    listed = await services.api_tokens.list()
    assert [tok.revoked for tok in listed] == [True, True]


async def test_tariffs(services: Services) -> None:
    with pytest.raises(UnknownStation):
        await services.tariffs.set("NOPE", currency="AUD")
    await services.stations.create("CS1", password=PASSWORD)
    with pytest.raises(InvalidRequest):
        await services.tariffs.set("CS1", currency="dollars")
    tariff = await services.tariffs.set("CS1", currency="aud", price_per_kwh=0.3)
    assert tariff.currency == "AUD"
    assert await services.tariffs.get("CS1") == tariff
    await services.tariffs.delete("CS1")
    assert await services.tariffs.get("CS1") is None


async def test_message_log_prune(services: Services) -> None:
    from csms.domain.models import Direction

    ml = services.message_log
    await ml.record(ml.entry("CS1", Direction.OUT, "CALL", "m1", "Reset", {"type": "Immediate"}))
    assert (await ml.list("CS1")).total == 1
    assert await ml.prune(datetime.now(UTC)) == 1
    assert (await ml.list("CS1")).total == 0


async def test_message_log_retention_bounds_the_log(services: Services) -> None:
    from datetime import timedelta

    from csms.domain.models import Direction

    ml = services.message_log
    ml.retention = timedelta(hours=1)
    old = ml.entry("CS1", Direction.IN, "CALL", "old", "Heartbeat", {})
    old = dataclasses.replace(old, created_at=datetime.now(UTC) - timedelta(hours=2))
    fresh = ml.entry("CS1", Direction.IN, "CALL", "new", "Heartbeat", {})
    await ml.record(old, fresh)
    assert await ml.prune_expired() == 1
    assert [e.message_id for e in (await ml.list("CS1")).items] == ["new"]
    ml.retention = None
    assert await ml.prune_expired() == 0


async def test_paging_limits_checked(services: Services) -> None:
    with pytest.raises(InvalidRequest):
        await services.stations.list(offset=-1)
    with pytest.raises(InvalidRequest):
        await services.transactions.list(limit=0)
