"""The CSIP-AUS notification endpoint (csms.integrations.csip.notifications) with an in-memory
token store: unknown tokens, bounds, parsing, the re-poll callback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from csms.integrations.csip import notifications as n
from csms.persistence.repositories.csip_telemetry import SubscriptionRecord

T0 = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
TOKEN = "A" * 43
RESOURCE = "/edev/1/derp/1/derc"


class FakeStore(n.NotificationStore):
    def __init__(self) -> None:
        self.records: dict[str, SubscriptionRecord] = {}
        self.lookups = 0
        self.delivered_log: list[tuple[str, bool]] = []

    async def subscription(self, digest: str) -> SubscriptionRecord | None:
        self.lookups += 1
        return self.records.get(digest)

    async def delivered(self, digest: str, record: SubscriptionRecord, cancelled: bool) -> None:
        self.delivered_log.append((record.site_id, cancelled))


def notification(resource: str = RESOURCE, status: int = 0) -> bytes:
    return (
        '<Notification xmlns="urn:ieee:std:2030.5:ns" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<subscribedResource>{resource}</subscribedResource>"
        '<Resource xsi:type="DERControlList" all="0" results="0" href="/edev/1/derp/1/derc"/>'
        f"<status>{status}</status><subscriptionURI>/edev/0/sub/3</subscriptionURI>"
        "</Notification>"
    ).encode()


@pytest.fixture
async def env() -> AsyncIterator[tuple[httpx.AsyncClient, FakeStore, list[str]]]:
    store = FakeStore()
    store.records[n.token_digest(TOKEN)] = SubscriptionRecord(
        "site-1", RESOURCE, "/edev/0/sub", "/edev/0/sub/3", T0
    )
    called: list[str] = []

    async def on_notification(site_id: str) -> None:
        called.append(site_id)

    app = FastAPI()
    app.include_router(n.notification_router(store, on_notification, max_body_bytes=4096))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client, store, called


async def test_valid_notification_triggers_a_repoll_of_its_site(env) -> None:  # type: ignore[no-untyped-def]
    client, store, called = env
    answer = await client.post(f"/csip/notify/{TOKEN}", content=notification())
    assert answer.status_code == 204
    await asyncio.sleep(0)
    assert called == ["site-1"]
    assert store.delivered_log == [("site-1", False)]


async def test_unknown_and_malformed_tokens_are_404_without_reading_the_body(env) -> None:  # type: ignore[no-untyped-def]
    client, store, called = env
    assert (
        await client.post("/csip/notify/" + "B" * 43, content=notification())
    ).status_code == 404
    assert store.lookups == 1
    for bad in ("short", "A" * 44, "A" * 42 + "!"):
        assert (await client.post(f"/csip/notify/{bad}", content=b"x")).status_code == 404
    assert store.lookups == 1  # malformed: not even looked up
    assert called == []


async def test_oversized_body_is_refused(env) -> None:  # type: ignore[no-untyped-def]
    client, _, called = env
    answer = await client.post(f"/csip/notify/{TOKEN}", content=b"<a>" + b" " * 5000 + b"</a>")
    assert answer.status_code == 413
    assert called == []


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Notification/>',
        b'<Subscription xmlns="urn:ieee:std:2030.5:ns"/>',
        notification(resource="/edev/2/derp/1/derc"),  # another site's resource
        notification(resource="/tm"),
    ],
)
async def test_anything_but_a_notification_of_the_resource_is_400(env, body: bytes) -> None:  # type: ignore[no-untyped-def]
    client, store, called = env
    assert (await client.post(f"/csip/notify/{TOKEN}", content=body)).status_code == 400
    assert called == [] and store.delivered_log == []


async def test_cancelled_subscription_is_dropped_and_site_repolled(env) -> None:  # type: ignore[no-untyped-def]
    client, store, called = env
    body = notification(status=4).replace(b'"DERControlList"', b'"DefaultDERControl"')
    answer = await client.post(f"/csip/notify/{TOKEN}", content=body)
    assert answer.status_code == 204
    await asyncio.sleep(0)
    assert store.delivered_log == [("site-1", True)] and called == ["site-1"]


async def test_a_list_member_deleted_keeps_the_list_subscription(env) -> None:  # type: ignore[no-untyped-def]
    # envoy cancels a DERControl (CACTUS GEN-07's cancel-active-der-controls) with status 4 on
    # the DERControlList's subscription and notifies the same URI at the next change: ours is
    # kept, or that next notification would be a 404 (all-notifications-transmitted fails).
    client, store, called = env
    for _ in range(2):
        answer = await client.post(f"/csip/notify/{TOKEN}", content=notification(status=4))
        assert answer.status_code == 204
    await asyncio.sleep(0)
    assert store.delivered_log == [("site-1", False)] * 2 and called == ["site-1"] * 2


@pytest.mark.parametrize(
    ("status", "resource_type", "ends"),
    [
        (0, "DERControlList", False),
        (0, "DefaultDERControl", False),
        (4, "DERControlList", False),  # a member deleted: the list and its subscription stay
        (4, "DERProgramList", False),
        (4, "DefaultDERControl", True),  # the subscribed resource itself is gone
        (4, None, True),
        (1, "DERControlList", True),
        (2, "DERControlList", True),
        (3, "DERControlList", True),
        (5, "DERControlList", True),  # not a status 2030.5 defines: not the default, so ended
    ],
)
def test_ends_subscription(status: int, resource_type: str | None, ends: bool) -> None:
    assert n.ends_subscription(status, resource_type) is ends


async def test_envoy_canonical_href_of_the_same_end_device_is_accepted(env) -> None:  # type: ignore[no-untyped-def]
    # envoy names a subscription to /edev/1/fsa/1/derp by the DERProgramList's /edev/1/derp.
    client, _, called = env
    answer = await client.post(f"/csip/notify/{TOKEN}", content=notification("/edev/1/derp"))
    assert answer.status_code == 204
    await asyncio.sleep(0)
    assert called == ["site-1"]


def test_notify_base_url_is_checked() -> None:
    assert n.check_notify_base_url("https://csms.example/api/") == "https://csms.example/api"
    for bad in ("ftp://x", "http://", "https://u:p@host", "https://h/?q=1"):
        with pytest.raises(ValueError):
            n.check_notify_base_url(bad)


# ---- a cancelled subscription, with the database store --------------------------------------


class RecordingServer:
    """The part of CsipTransport that CsipSubscriptions.ensure uses, recording each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.made = 0

    def path_of(self, href: str) -> str:
        return href

    async def post(self, href: str, document: object) -> str:
        self.made += 1
        self.requests.append(("POST", href))
        return f"{href}/{self.made}"

    async def delete(self, href: str) -> None:
        self.requests.append(("DELETE", href))


async def test_a_cancelled_single_resource_is_deleted_on_the_server_then_subscribed_anew(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """Status 4 about a DefaultDERControl: envoy keeps that subscription (it never deletes one
    when an entity goes) and would go on notifying its token. Ours is kept, so its token still
    answers, until the next `ensure` deletes it on the server and subscribes again."""
    from csms.domain.sites import Site
    from csms.persistence.repositories import csip_telemetry as repo
    from tests.support.csms_harness import running_services

    dderc = "/edev/1/derp/1/dderc"
    async with running_services(tmp_path) as services:
        site = await services.sites.create(Site(id="site-1", name="Home", station_ids=()))
        server = RecordingServer()
        subscriptions = n.CsipSubscriptions(server, services.db, "https://csms.example")  # type: ignore[arg-type]
        assert await subscriptions.ensure(site, "/edev/0/sub", [dderc], T0) == [dderc]
        async with services.db.read() as conn:
            (first,) = await repo.site_subscriptions(conn, "site-1")
        assert first.subscription_href == "/edev/0/sub/1"
        async with services.db.read() as conn:
            digest = (
                await conn.execute(
                    repo.csip_subscriptions.select().with_only_columns(
                        repo.csip_subscriptions.c.token_sha256
                    )
                )
            ).scalar_one()
        store = n.NotificationStore(services.db, clock=lambda: T0)
        await store.delivered(digest, first, cancelled=True)
        assert await store.subscription(digest) is not None  # its token still answers
        server.requests.clear()
        assert await subscriptions.ensure(site, "/edev/0/sub", [dderc], T0) == [dderc]
        assert server.requests == [("DELETE", "/edev/0/sub/1"), ("POST", "/edev/0/sub")]
        assert await store.subscription(digest) is None  # the old token is forgotten now
        async with services.db.read() as conn:
            (again,) = await repo.site_subscriptions(conn, "site-1")
        assert (again.list_href, again.subscription_href) == ("/edev/0/sub", "/edev/0/sub/2")
        server.requests.clear()  # in force again: nothing to do
        assert await subscriptions.ensure(site, "/edev/0/sub", [dderc], T0) == []
        assert server.requests == []
