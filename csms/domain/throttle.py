"""Throttling of failed station authentications (pure: the caller passes the clock).

Each key (a station id, or a source address) may fail `free_failures` times; every further
failure blocks the key for base * 2^k seconds (k = failures beyond the free ones), capped at
`max_delay_s`. Attempts made while a key is blocked are refused without checking the password
and do not count: an attacker gets one real guess per back-off window, whatever its rate. A key
with no failure for `forget_after_s` starts over. Tables are LRU-capped, so rotating ids or
addresses cannot grow memory.

A "burst" starts at the failure that first blocks a key and lasts until the key is forgotten
or cleared by a success: the caller stores one security event per burst.

Concurrency: once a key's free failures are used up, only one of its attempts is checked at a
time (`begin`/`end` bracket each check); others are refused until it ends, so a client opening
many handshakes at once gets no more checks than one opening them in turn.

Lockout protection: a successful login remembers the (station id, address) pair, and that pair
is not subject to the station-id throttle (only to its address's), so guessing a station's
password from elsewhere cannot lock the real station out.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

# 2^MAX_EXPONENT * base is far above any sane max_delay_s; keeps the power finite.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    free_failures: int  # failures allowed before any block
    base_delay_s: float  # block after the first failure beyond the free ones
    max_delay_s: float  # cap of the doubling block
    forget_after_s: float  # a key with no failure for this long starts over

    def __post_init__(self) -> None:
        numbers = (self.base_delay_s, self.max_delay_s, self.forget_after_s)
        if not all(math.isfinite(x) and x > 0 for x in numbers):
            raise ValueError("throttle delays must be finite and > 0")
        if self.free_failures < 0:
            raise ValueError("free_failures must be >= 0")
        if self.base_delay_s > self.max_delay_s:
            raise ValueError("base_delay_s must be <= max_delay_s")
        if self.forget_after_s < self.max_delay_s:
            raise ValueError("forget_after_s must be >= max_delay_s (a block outlives its key)")

    def delay_after(self, failures: int) -> float:
        """The block that the `failures`-th failure sets (0 while within the free ones)."""
        beyond = failures - self.free_failures
        if beyond <= 0:
            return 0.0
        exponent = min(beyond - 1, _MAX_EXPONENT)
        return min(self.base_delay_s * 2.0**exponent, self.max_delay_s)


@dataclass(slots=True)
class _Entry:
    failures: int
    last_failure: float
    blocked_until: float
    in_burst: bool


class FailureThrottle:
    """Failures per key with exponential back-off; at most `capacity` keys (LRU)."""

    def __init__(self, policy: BackoffPolicy, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.policy = policy
        self.capacity = capacity
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # Checks under way per key; bounded by the handshakes in progress (each has a timeout).
        self._in_flight: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now - entry.last_failure >= self.policy.forget_after_s:
            del self._entries[key]
            return None
        return entry

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until `key` may try again; 0 when it may try now."""
        entry = self._live(key, now)
        if entry is None:
            return 0.0
        if entry.blocked_until > now:
            return entry.blocked_until - now
        if entry.failures >= self.policy.free_failures and self._in_flight.get(key):
            return self.policy.base_delay_s  # its one check at a time is under way
        return 0.0

    def begin(self, key: str) -> None:
        """A check of `key` starts (call `end` when its outcome is recorded)."""
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def end(self, key: str) -> None:
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)

    def in_flight(self, key: str) -> int:
        return self._in_flight.get(key, 0)

    def record_failure(self, key: str, now: float) -> bool:
        """Count a checked failure; True when it starts a burst (first block of the key)."""
        entry = self._live(key, now)
        if entry is None:
            entry = _Entry(0, now, now, False)
            self._entries[key] = entry
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        # Bounded: a blocked key is not checked, so failures grow one per back-off window.
        entry.failures = min(entry.failures + 1, self.policy.free_failures + _MAX_EXPONENT + 1)
        entry.last_failure = now
        delay = self.policy.delay_after(entry.failures)
        entry.blocked_until = now + delay
        if delay > 0 and not entry.in_burst:
            entry.in_burst = True
            return True
        return False

    def failures(self, key: str, now: float) -> int:
        entry = self._live(key, now)
        return 0 if entry is None else entry.failures

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)


class Scope(StrEnum):
    STATION = "station"
    ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class Verdict:
    retry_after_s: float  # 0: go ahead and check the credentials
    scope: Scope | None  # which throttle refused (the longer block when both do)


def address_key(host: str | None) -> str:
    """The throttled unit of a source address: an IPv4 address, or the /64 of an IPv6 one
    (one host usually holds a whole /64, so per-address keys would be free to rotate)."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# X-Forwarded-For hops looked at (right to left): a chain of proxies is short.
MAX_FORWARDED_HOPS = 16


def parse_networks(text: str) -> tuple[Network, ...]:
    """'10.0.0.5, 10.1.0.0/16, ::1' -> networks; ValueError naming a bad entry."""
    networks = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network") from None
    return tuple(networks)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_host(
    peer: str | None, forwarded_for: list[str], trusted_proxies: tuple[Network, ...]
) -> str | None:
    """The station's address. Behind trusted reverse proxies (e.g. TLS terminators), the
    right-most X-Forwarded-For entry that is not itself a trusted proxy; otherwise the peer
    (a header from anyone else is ignored: it would let a client choose its address)."""

    def trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in net for net in trusted_proxies)

    if peer is None or not trusted(_parse_ip(peer)):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
        address = _parse_ip(hop)
        if address is None:
            return peer  # a broken chain: only the proxy itself is known
        if not trusted(address):
            return str(address)
    return peer


class AuthThrottle:
    """Station-id and source-address throttles, plus the pairs that logged in recently."""

    def __init__(
        self,
        station_policy: BackoffPolicy,
        address_policy: BackoffPolicy,
        *,
        capacity: int = 100_000,
        trust_ttl_s: float = 30 * 86400.0,
    ) -> None:
        self.stations = FailureThrottle(station_policy, capacity)
        self.addresses = FailureThrottle(address_policy, capacity)
        self._capacity = capacity
        self._trust_ttl_s = trust_ttl_s
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _is_trusted(self, station_id: str, address: str, now: float) -> bool:
        since = self._trusted.get((station_id, address))
        if since is None:
            return False
        if now - since >= self._trust_ttl_s:
            del self._trusted[(station_id, address)]
            return False
        return True

    def check(self, station_id: str, address: str, now: float) -> Verdict:
        by_address = self.addresses.retry_after(address, now)
        by_station = (
            0.0
            if self._is_trusted(station_id, address, now)
            else self.stations.retry_after(station_id, now)
        )
        if by_address <= 0 and by_station <= 0:
            return Verdict(0.0, None)
        if by_station > by_address:
            return Verdict(by_station, Scope.STATION)
        return Verdict(by_address, Scope.ADDRESS)

    def begin(self, station_id: str, address: str) -> None:
        """A check starts for this id and address: call `end` after recording its outcome."""
        self.stations.begin(station_id)
        self.addresses.begin(address)

    def end(self, station_id: str, address: str) -> None:
        self.stations.end(station_id)
        self.addresses.end(address)

    def record_failure(self, station_id: str | None, address: str, now: float) -> list[Scope]:
        """A checked attempt failed; `station_id` None for an unknown id (counted on the
        address only, so made-up ids cannot flush real stations out of the table). Returns
        the scopes whose burst this failure starts."""
        started = []
        if station_id is not None and self.stations.record_failure(station_id, now):
            started.append(Scope.STATION)
        if self.addresses.record_failure(address, now):
            started.append(Scope.ADDRESS)
        return started

    def record_success(self, station_id: str, address: str, now: float) -> None:
        # The address keeps its failures: one valid account must not reset them for guesses
        # at others from the same address.
        self.stations.clear(station_id)
        self._trusted[(station_id, address)] = now
        self._trusted.move_to_end((station_id, address))
        if len(self._trusted) > self._capacity:
            self._trusted.popitem(last=False)


__all__ = [
    "AuthThrottle",
    "BackoffPolicy",
    "FailureThrottle",
    "Scope",
    "Verdict",
    "address_key",
    "client_host",
    "parse_networks",
]
