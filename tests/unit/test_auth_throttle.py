"""Finding 4 (online password guessing): the pure station-authentication throttle."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.domain.throttle import (
    AuthThrottle,
    BackoffPolicy,
    FailureThrottle,
    Scope,
    address_key,
    client_host,
    parse_networks,
)

POLICY = BackoffPolicy(free_failures=3, base_delay_s=1.0, max_delay_s=60.0, forget_after_s=600.0)

policies = st.builds(
    lambda free, base, factor, forget_factor: BackoffPolicy(
        free, base, base * factor, base * factor * forget_factor
    ),
    st.integers(0, 10),
    st.floats(0.01, 10.0),
    st.floats(1.0, 1000.0),
    st.floats(1.0, 10.0),
)
# Attempt times: gaps between successive attempts (a non-decreasing clock).
gaps = st.lists(st.floats(0.0, 200.0, allow_nan=False), min_size=1, max_size=200)


def _guess_until(throttle: FailureThrottle, key: str, times: list[float]) -> list[float]:
    """An attacker guessing (always wrong) at each time: the times a guess was checked."""
    checked = []
    for now in times:
        if throttle.retry_after(key, now) <= 0:
            throttle.record_failure(key, now)
            checked.append(now)
    return checked


def _times(gap_list: list[float]) -> list[float]:
    now, out = 0.0, []
    for gap in gap_list:
        now += gap
        out.append(now)
    return out


@given(policies, gaps)
@settings(max_examples=200, deadline=None)
def test_finding4_checked_guesses_are_bounded_by_backoff(
    policy: BackoffPolicy, gap_list: list[float]
) -> None:
    """Whatever the attacker's rate, two checked guesses beyond the free ones are at least the
    back-off apart (or the key was forgotten in between)."""
    throttle = FailureThrottle(policy, capacity=10)
    checked = _guess_until(throttle, "CS1", _times(gap_list))
    failures = 1  # of the checked guess before `current`
    for previous, current in itertools.pairwise(checked):
        if current - previous >= policy.forget_after_s:
            failures = 1
            continue
        assert current - previous >= policy.delay_after(failures) - 1e-9
        failures += 1


@given(policies, st.integers(0, 10_000))
@settings(max_examples=200, deadline=None)
def test_finding4_delay_doubles_and_is_capped(policy: BackoffPolicy, failures: int) -> None:
    delay = policy.delay_after(failures)
    assert 0 <= delay <= policy.max_delay_s and math.isfinite(delay)
    if failures <= policy.free_failures:
        assert delay == 0
    else:
        nxt = policy.delay_after(failures + 1)
        assert nxt == min(2 * delay, policy.max_delay_s) or nxt == policy.max_delay_s


def test_finding4_burst_of_guesses_gets_one_check_per_window() -> None:
    throttle = FailureThrottle(POLICY, capacity=10)
    # 10,000 guesses over 100 s (100/s): 3 free, then blocks of 1, 2, 4, 8, 16, 32, 60 s.
    checked = _guess_until(throttle, "CS1", [i / 100 for i in range(10_000)])
    assert len(checked) <= 3 + 7
    assert throttle.failures("CS1", 100.0) == len(checked)


def test_finding4_right_password_works_once_the_block_clears() -> None:
    throttle = AuthThrottle(POLICY, POLICY)
    for _ in range(4):
        throttle.record_failure("CS1", "203.0.113.9", 0.0)
    blocked = throttle.check("CS1", "198.51.100.1", 0.5)
    assert blocked.retry_after_s == pytest.approx(0.5) and blocked.scope is Scope.STATION
    assert throttle.check("CS1", "198.51.100.1", 1.0).retry_after_s == 0
    throttle.record_success("CS1", "198.51.100.1", 1.0)
    assert throttle.stations.failures("CS1", 1.0) == 0


def test_finding4_one_burst_per_key_until_forgotten() -> None:
    throttle = FailureThrottle(POLICY, capacity=10)
    starts = [throttle.record_failure("CS1", float(t)) for t in range(0, 200, 70)]
    # failures 1-3 free at 0, 70, 140 -> no burst yet; the 4th starts one, later ones don't.
    starts += [throttle.record_failure("CS1", 200.0 + t) for t in range(0, 300, 100)]
    assert starts.count(True) == 1 and starts[3] is True
    # Quiet for forget_after_s: a new burst may start.
    later = 500.0 + POLICY.forget_after_s
    assert [throttle.record_failure("CS1", later + i) for i in range(4)] == [
        False,
        False,
        False,
        True,
    ]


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=500))
@settings(max_examples=50, deadline=None)
def test_finding4_tables_are_capped(keys: list[str]) -> None:
    throttle = AuthThrottle(POLICY, POLICY, capacity=16)
    for i, key in enumerate(keys):
        throttle.record_failure(key, f"10.0.{i % 256}.{i // 256}", float(i))
        throttle.record_success(key, f"10.1.{i % 256}.{i // 256}", float(i))
    assert len(throttle.stations) <= 16 and len(throttle.addresses) <= 16
    assert len(throttle._trusted) <= 16


def test_finding4_unknown_ids_count_on_the_address_only() -> None:
    throttle = AuthThrottle(POLICY, POLICY)
    scopes = [throttle.record_failure(None, "203.0.113.9", 0.0) for _ in range(4)]
    assert len(throttle.stations) == 0
    assert scopes[-1] == [Scope.ADDRESS]
    # The address is blocked for any id, known or not.
    verdict = throttle.check("ANY", "203.0.113.9", 0.1)
    assert verdict.scope is Scope.ADDRESS and verdict.retry_after_s > 0


def test_finding4_guessing_from_elsewhere_does_not_lock_out_the_real_station() -> None:
    throttle = AuthThrottle(POLICY, POLICY)
    throttle.record_success("CS1", "192.0.2.10", 0.0)
    for _ in range(10):
        throttle.record_failure("CS1", "203.0.113.9", 1.0)
    assert throttle.check("CS1", "203.0.113.77", 1.5).scope is Scope.STATION
    assert throttle.check("CS1", "192.0.2.10", 1.5).retry_after_s == 0


def test_finding4_ipv6_hosts_are_throttled_per_64() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("127.0.0.1") == "127.0.0.1"
    assert address_key(None) == "?"


@pytest.mark.parametrize(
    "args",
    [(0, 0.0, 1.0, 1.0), (0, 1.0, float("inf"), 1.0), (-1, 1.0, 1.0, 1.0), (0, 2.0, 1.0, 9.0)],
)
def test_finding4_policy_rejects_nonsense(args: tuple[int, float, float, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(*args)


def test_finding4_one_check_at_a_time_once_free_failures_are_used() -> None:
    throttle = AuthThrottle(POLICY, POLICY)
    # Within the free failures, concurrent logins (a reconnect storm behind one NAT) all go.
    for _ in range(50):
        assert throttle.check("CS1", "192.0.2.1", 0.0).retry_after_s == 0
        throttle.begin("CS1", "192.0.2.1")
    for _ in range(50):
        throttle.end("CS1", "192.0.2.1")
    for _ in range(3):
        throttle.record_failure("CS1", "192.0.2.1", 0.0)
    throttle.begin("CS1", "192.0.2.1")  # the 4th guess is being checked...
    assert throttle.check("CS1", "192.0.2.1", 0.0).retry_after_s > 0  # ...a 5th must wait
    throttle.record_failure("CS1", "192.0.2.1", 0.0)
    throttle.end("CS1", "192.0.2.1")
    assert throttle.stations.in_flight("CS1") == 0 and throttle.addresses.in_flight("x") == 0
    assert throttle.check("CS1", "192.0.2.1", 0.5).retry_after_s == pytest.approx(0.5)


PROXIES = parse_networks("10.0.0.5, 10.1.0.0/16")


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("10.0.0.5", ["198.51.100.7"], "198.51.100.7"),
        # The right-most hop not a proxy: what the client wrote on the left is not believed.
        ("10.0.0.5", ["1.2.3.4, 198.51.100.7, 10.1.2.3"], "198.51.100.7"),
        ("10.0.0.5", ["1.2.3.4", "198.51.100.7"], "198.51.100.7"),
        # Not from a proxy: the header is the client's own claim, ignored.
        ("203.0.113.9", ["198.51.100.7"], "203.0.113.9"),
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", ["garbage"], "10.0.0.5"),
        ("10.0.0.5", ["10.1.9.9"], "10.0.0.5"),
        ("::ffff:10.0.0.5", ["2001:db8::1"], "2001:db8::1"),
        (None, ["198.51.100.7"], None),
    ],
)
def test_finding4_address_behind_trusted_proxies(
    peer: str | None, forwarded: list[str], expected: str | None
) -> None:
    assert client_host(peer, forwarded, PROXIES) == expected
    assert client_host(peer, forwarded, ()) == peer


def test_finding4_forwarded_chain_is_read_boundedly() -> None:
    forwarded = ["10.1.0.1, " * 100_000 + "10.1.0.2"]
    assert client_host("10.0.0.5", forwarded, PROXIES) == "10.0.0.5"


def test_finding4_bad_proxy_setting_names_the_entry() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        parse_networks("10.0.0.5,10.0.0.300")
