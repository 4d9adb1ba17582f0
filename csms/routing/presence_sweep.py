"""Presence records of dead nodes, swept (issue 17): a node killed without a goodbye leaves
its claims in the broker; every node drops, compare-and-delete, a record whose node's liveness
entry has expired or names another incarnation on two sweeps in a row, so a node that only
missed refreshes during a broker outage keeps its claims (it re-checks them when the broker
answers again). The broker operations come in as callables (csms.routing.broker)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from csms.routing.wire import Claimed

# Every SWEEP_EVERY_BEATS liveness refreshes (2 x the node TTL), pages of SWEEP_PAGE records,
# at most SWEEP_MAX_RECORDS per pass and SWEEP_MAX_NODES node names looked up.
SWEEP_EVERY_BEATS = 6
SWEEP_PAGE = 500
SWEEP_MAX_RECORDS = 100_000
SWEEP_MAX_NODES = 1_000
# One page of a presence scan: the next cursor (0 = done) and (record key, claim) pairs.
PresencePage = tuple[int, list[tuple[str, Claimed]]]
# (record key, revision) found stale by a sweep.
Marks = set[tuple[str, int]]


async def sweep_stale_records(
    scan: Callable[[int, int], Awaitable[PresencePage]],
    node_incarnation: Callable[[str], Awaitable[str | None]],
    drop: Callable[[str, Claimed], Awaitable[None]],
    previous: Marks,
    max_records: int = SWEEP_MAX_RECORDS,
) -> tuple[int, Marks]:
    """One bounded pass: the records dropped (stale now and in `previous`) and the marks for
    the next pass."""
    incarnations: dict[str, str | None] = {}
    stale_now: Marks = set()
    dropped = seen = cursor = 0
    while True:
        cursor, page = await scan(cursor, SWEEP_PAGE)
        for key, claimed in page:
            holder = claimed.holder
            if holder.node_id not in incarnations:
                if len(incarnations) >= SWEEP_MAX_NODES:
                    continue  # more node names than a deployment has: leave the rest
                incarnations[holder.node_id] = await node_incarnation(holder.node_id)
            if incarnations[holder.node_id] == holder.incarnation:
                continue
            mark = (key, claimed.revision)
            stale_now.add(mark)
            if mark in previous:
                await drop(key, claimed)
                dropped += 1
        seen += len(page)
        if cursor == 0 or seen >= max_records:
            break
    return dropped, stale_now
