"""CSIP-AUS subscriptions and the notification endpoint (IEEE 2030.5 pub/sub, issue 18).

`CsipSubscriptions.ensure(site, subscription_list_href, resources, now)` keeps one
Subscription per resource the client polls (DERControlList, DefaultDERControl, DERProgramList,
FunctionSetAssignmentsList ...) on the server, each with its own notificationURI
`<notify_base_url>/csip/notify/<token>`: a 256-bit random token, stored only as its SHA-256
(csip_subscriptions), saved before the POST so that a notification racing the answer is known.
envoy posts subscriptions to the aggregator's own EndDevice list (`/edev/0/sub`, CACTUS ALL-14)
or the site's; the resources are the site's (`/edev/{site}/...`).

`notification_router(store, on_notification)` is the endpoint (FastAPI): an unknown or malformed
token is a 404 before the body is read (a database lookup by unique index); the body is bounded
(413) and parsed as a 2030.5 Notification (400 when it is not one, or names another resource);
then `on_notification(site_id)` is called (the lead wires it to the poller: re-poll that site
now) and 204 answered. Any node may serve it: the token is looked up in the database. A
Notification with a cancelled status (except a list member deleted, `ends_subscription`) marks
our record cancelled: its token still answers, and the next `ensure` deletes that subscription
on the server (envoy keeps a subscription whose resource was deleted and would go on notifying
it) before subscribing anew, so that no orphan is left notifying a token we forgot.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import re
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from envoy_schema.server.schema.sep2.der import DERProgramListResponse
from envoy_schema.server.schema.sep2.end_device import EndDeviceListResponse, EndDeviceResponse
from envoy_schema.server.schema.sep2.function_set_assignments import (
    FunctionSetAssignmentsListResponse,
)
from envoy_schema.server.schema.sep2.pub_sub import (
    Notification,
    NotificationStatus,
    Subscription,
    SubscriptionEncoding,
)
from fastapi import APIRouter, Request, Response
from pydantic_xml.errors import ParsingError
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.sites import Site
from csms.integrations.csip.telemetry import Db
from csms.integrations.csip.transport import CsipError, CsipTransport, parse
from csms.persistence.repositories import csip_telemetry as repo
from csms.persistence.repositories.csip_telemetry import SubscriptionRecord

log = logging.getLogger("csms.csip.notifications")

NOTIFY_PATH = "/csip/notify"
TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)
# A notification carries at most `limit` list items (we re-poll, so few are needed); a
# DERControl is about 1.5 kB of XML.
SUBSCRIPTION_LIMIT = 10
MAX_NOTIFICATION_BYTES = 128 * 1024
MAX_RESOURCES_PER_SITE = repo.MAX_SUBSCRIPTIONS_PER_SITE
SUBSCRIPTION_LEVEL = "+S1"  # 2030.5 schema level of what we understand

OnNotification = Callable[[str], Awaitable[None] | None]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_notify_base_url(url: str) -> str:
    """`url` without a trailing slash: http(s)://host[:port][/path], nothing else (the server
    checks the host against the aggregator's registered domains)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("csip notify base URL: http(s)://host[:port][/path]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("csip notify base URL: no query, fragment or credentials")
    return url.rstrip("/")


def subscription_document(resource_href: str, notification_uri: str) -> Subscription:
    return Subscription(
        subscribedResource=resource_href,
        encoding=SubscriptionEncoding.XML,
        level=SUBSCRIPTION_LEVEL,
        limit=SUBSCRIPTION_LIMIT,
        notificationURI=notification_uri,
    )


MAX_DISCOVERED_FSA = 8
MAX_DISCOVERED_PROGRAMS = 4  # per program list; MAX_RESOURCES_PER_SITE bounds the total


async def aggregator_subscription_list(
    transport: CsipTransport, edev_list_href: str, site_edev_href: str
) -> str:
    """Where the aggregator posts its subscriptions: its own EndDevice's SubscriptionList (envoy:
    /edev/0/sub, CACTUS ALL-14), else the site EndDevice's."""
    _, devices = await transport.get_list(edev_list_href, EndDeviceListResponse, "EndDevice")
    for device in devices:
        ours = (device.lFDI or "").upper() == transport.aggregator_lfdi.upper()
        if ours and device.SubscriptionListLink is not None:
            return transport.path_of(device.SubscriptionListLink.href)
    site = await transport.get(site_edev_href, EndDeviceResponse)
    if site.SubscriptionListLink is None:
        raise CsipError(f"{site_edev_href} offers no SubscriptionList")
    return transport.path_of(site.SubscriptionListLink.href)


async def site_resources(transport: CsipTransport, site_edev_href: str) -> list[str]:
    """What the client polls for a site's controls, to subscribe to: the FunctionSetAssignments
    list, each FSA's DERProgram list, each program's DERControl list and DefaultDERControl."""
    site = await transport.get(site_edev_href, EndDeviceResponse)
    if site.FunctionSetAssignmentsListLink is None:
        return []
    fsa_list = transport.path_of(site.FunctionSetAssignmentsListLink.href)
    resources = [fsa_list]
    _, assignments = await transport.get_list(
        fsa_list,
        FunctionSetAssignmentsListResponse,
        "FunctionSetAssignments",
        max_items=MAX_DISCOVERED_FSA,
    )
    for fsa in assignments:
        if fsa.DERProgramListLink is None:
            continue
        programs_href = transport.path_of(fsa.DERProgramListLink.href)
        resources.append(programs_href)
        _, programs = await transport.get_list(
            programs_href, DERProgramListResponse, "DERProgram", max_items=MAX_DISCOVERED_PROGRAMS
        )
        for program in programs:
            for link in (program.DERControlListLink, program.DefaultDERControlLink):
                if link is not None:
                    resources.append(transport.path_of(link.href))
    return list(dict.fromkeys(resources))[:MAX_RESOURCES_PER_SITE]


class CsipSubscriptions:
    """The aggregator's subscriptions, per site."""

    def __init__(self, transport: CsipTransport, db: Db, notify_base_url: str) -> None:
        self._transport = transport
        self._db = db
        self.notify_base_url = check_notify_base_url(notify_base_url)

    async def ensure_for_site(
        self, site: Site, edev_list_href: str, site_edev_href: str, now: datetime
    ) -> list[str]:
        """Discover (aggregator_subscription_list, site_resources) and `ensure`: what the
        poller calls after its FSA / DERProgram stages (a few GETs; nothing posted when all is
        subscribed already)."""
        list_href = await aggregator_subscription_list(
            self._transport, edev_list_href, site_edev_href
        )
        resources = await site_resources(self._transport, site_edev_href)
        return await self.ensure(site, list_href, resources, now)

    async def ensure(
        self, site: Site, subscription_list_href: str, resources: Sequence[str], now: datetime
    ) -> list[str]:
        """Subscribe to each of `resources` not yet subscribed through `subscription_list_href`;
        drop (on the server too) the site's subscriptions to resources no longer listed. The
        resources newly subscribed are returned."""
        wanted = list(dict.fromkeys(self._transport.path_of(r) for r in resources))
        if len(wanted) > MAX_RESOURCES_PER_SITE:
            raise ValueError(f"at most {MAX_RESOURCES_PER_SITE} subscriptions per site")
        list_href = self._transport.path_of(subscription_list_href)
        async with self._db.read() as conn:
            existing = {r.resource_href: r for r in await repo.site_subscriptions(conn, site.id)}
        for resource, record in existing.items():
            if resource not in wanted or record.list_href != list_href:
                await self._drop(record)
        made = []
        for resource in wanted:
            known = existing.get(resource)
            if known and known.list_href == list_href and known.subscription_href:
                continue
            await self._subscribe(site.id, list_href, resource, now)
            made.append(resource)
        return made

    async def _subscribe(self, site_id: str, list_href: str, resource: str, now: datetime) -> None:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = token_digest(token)
        record = SubscriptionRecord(site_id, resource, list_href, None, now)
        # Saved first: the server may notify before its answer to the POST reaches us.
        await self._db.write(lambda conn: repo.add_subscription(conn, record, digest))
        document = subscription_document(resource, f"{self.notify_base_url}{NOTIFY_PATH}/{token}")
        try:
            location = await self._transport.post(list_href, document)
        except CsipError:
            await self._db.write(lambda conn: repo.remove_subscription(conn, site_id, resource))
            raise
        saved = SubscriptionRecord(site_id, resource, list_href, location or list_href, now)
        await self._db.write(lambda conn: repo.add_subscription(conn, saved, digest))

    async def _drop(self, record: SubscriptionRecord) -> None:
        if record.subscription_href and record.subscription_href != record.list_href:
            try:
                await self._transport.delete(record.subscription_href)
            except CsipError as error:  # gone already, or the server refuses: ours is dropped
                log.info("csip: DELETE %s: %s", record.subscription_href, error)
        await self._db.write(
            lambda conn: repo.remove_subscription(conn, record.site_id, record.resource_href)
        )


# ---- the endpoint -------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    site_id: str
    resource_href: str
    status: int


class NotificationStore:
    """Token lookups and bookkeeping for the endpoint (any node: the database decides)."""

    def __init__(self, db: Db, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._db = db
        self._clock = clock

    async def subscription(self, digest: str) -> SubscriptionRecord | None:
        async with self._db.read() as conn:
            return await repo.subscription_of_token(conn, digest)

    async def delivered(self, digest: str, record: SubscriptionRecord, cancelled: bool) -> None:
        now = self._clock()

        async def op(conn: AsyncConnection) -> None:
            if cancelled:
                await repo.mark_cancelled(conn, digest, now)
            else:
                await repo.mark_notified(conn, digest, now)

        await self._db.write(op)


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _same_resource(notified: str, subscribed: str) -> bool:
    """The notification is about what was subscribed to: the same resource, or one of the same
    EndDevice (envoy 1.5.0 names a DERProgramList subscribed as /edev/1/fsa/1/derp by its
    canonical /edev/1/derp; the token already says which subscription this is)."""
    got = [p for p in urllib.parse.urlsplit(notified).path.split("/") if p]
    want = [p for p in urllib.parse.urlsplit(subscribed).path.split("/") if p]
    if got == want:
        return True
    return len(got) >= 2 and len(want) >= 2 and got[0] == want[0] == "edev" and got[1] == want[1]


def ends_subscription(status: int, resource_type: str | None) -> bool:
    """Whether a Notification ends our subscription. Any status but the default says it was
    cancelled, except "cancelled, resource deleted" (4) about a list: envoy sends that when a
    member of a subscribed list is deleted (a cancelled DERControl) and keeps the subscription,
    notifying the same URI at the next change; a list itself is not deleted while its parent
    lives."""
    if status == NotificationStatus.DEFAULT:
        return False
    listed = resource_type is not None and resource_type.endswith("List")
    return not (status == NotificationStatus.SUBSCRIPTION_CANCELLED_RESOURCE_DELETED and listed)


def notification_router(
    store: NotificationStore,
    on_notification: OnNotification,
    *,
    max_body_bytes: int = MAX_NOTIFICATION_BYTES,
) -> APIRouter:
    """POST /csip/notify/{token}: no other authentication than the token (the server that
    notifies holds no credential of ours); mount it outside the API's auth."""
    router = APIRouter()
    pending: set[asyncio.Task[None]] = set()

    def fire(site_id: str) -> None:
        result = on_notification(site_id)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            pending.add(task)
            task.add_done_callback(pending.discard)

    @router.post(NOTIFY_PATH + "/{token}", include_in_schema=False)
    async def notify(token: str, request: Request) -> Response:
        if not TOKEN_PATTERN.fullmatch(token):
            return Response(status_code=404)
        digest = token_digest(token)
        record = await store.subscription(digest)
        if record is None:
            return Response(status_code=404)
        body = await _bounded_body(request, max_body_bytes)
        if body is None:
            return Response(status_code=413)
        try:
            notification = parse(Notification, body)
        except (CsipError, ParsingError) as error:  # transport.parse lets ParsingError through
            log.info("csip notification for site %s refused: %s", record.site_id, error)
            return Response(status_code=400)
        if not _same_resource(str(notification.subscribedResource), record.resource_href):
            return Response(status_code=400)
        resource_type = getattr(notification.resource, "type", None)
        cancelled = ends_subscription(int(notification.status), resource_type)
        await store.delivered(digest, record, cancelled)
        fire(record.site_id)
        return Response(status_code=204)

    return router
