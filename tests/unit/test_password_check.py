"""The fast keyed password check (csms/services/password_check.py) and its key file."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.services.password_check import (
    CheckResult,
    PasswordCheck,
    default_key_path,
    load_or_create_key,
)

KEY = bytes(range(32))
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g"
ids = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1)
passwords = st.text(st.characters(blacklist_categories=("Cs",)), min_size=16, max_size=40)


@given(station_id=ids, password=passwords, other=passwords)
def test_check_matches_only_its_own_password(station_id: str, password: str, other: str) -> None:
    check = PasswordCheck(KEY)
    stored = check.make(station_id, password, HASH)
    assert password not in stored
    assert check.test(stored, station_id, password, HASH) is CheckResult.MATCH
    expected = CheckResult.MATCH if other == password else CheckResult.MISMATCH
    assert check.test(stored, station_id, other, HASH) is expected


@given(station_id=ids, password=passwords)
def test_check_is_bound_to_station_key_and_hash(station_id: str, password: str) -> None:
    check = PasswordCheck(KEY)
    stored = check.make(station_id, password, HASH)
    # Another station with the same password: a different MAC (a copied row does not admit it).
    assert check.test(stored, station_id + "x", password, HASH) is CheckResult.MISMATCH
    # Another key (another node's, or a rotated one): not usable, argon2 decides.
    other_key = PasswordCheck(bytes(32))
    assert other_key.key_id != check.key_id
    assert other_key.test(stored, station_id, password, HASH) is CheckResult.UNUSABLE
    # The argon2 hash changed behind the CSMS: stale, argon2 decides.
    assert check.test(stored, station_id, password, HASH + "A") is CheckResult.UNUSABLE


@pytest.mark.parametrize(
    "stored", [None, "", "hs1", "hs2$x$y$z", "hs1$0000$1111$2222$3333", "garbage"]
)
def test_absent_or_malformed_check_is_unusable(stored: str | None) -> None:
    assert PasswordCheck(KEY).test(stored, "CS1", "p" * 16, HASH) is CheckResult.UNUSABLE


def test_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        PasswordCheck(b"short")


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "csms.password-key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_nodes_starting_at_once_share_one_key(tmp_path: Path) -> None:
    path = tmp_path / "shared.password-key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_or_create_key(path), range(32)))
    assert len(keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize(
    ("content", "message"), [("not hex at all", "hex key"), ("abcd", "16 bytes")]
)
def test_bad_key_file_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.password-key"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_or_create_key(path)


def test_key_file_written_by_an_operator_is_used(tmp_path: Path) -> None:
    path = tmp_path / "operator.key"
    path.write_text(os.urandom(32).hex().upper() + "\n")
    assert load_or_create_key(path) == bytes.fromhex(path.read_text().strip())


def test_default_key_path_sits_beside_the_sqlite_file() -> None:
    assert default_key_path("sqlite+aiosqlite:////var/lib/csms/main.db") == Path(
        "/var/lib/csms/main.password-key"
    )
    assert default_key_path("sqlite+aiosqlite:///./csms.db") == Path("csms.password-key")
    assert default_key_path("sqlite+aiosqlite:///:memory:") == Path("csms.password-key")
    assert default_key_path("postgresql+asyncpg://u@h/db") == Path("csms.password-key")
