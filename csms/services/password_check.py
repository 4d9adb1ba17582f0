"""A fast, keyed check of station passwords, stored beside the argon2id hash.

argon2id stays the canonical record of a station's password: it is what protects the password
if the database leaks. But one argon2id verification costs ~165 ms of CPU and 64 MiB, so a
fresh CSMS facing 10,000 reconnecting stations would need ~27 CPU-minutes before the last one
got in. The check is HMAC-SHA256 under a server-side key that lives outside the database (a key
file shared by all nodes): it costs microseconds, and without the key a stolen database row
gives an attacker nothing to brute-force.

Stored form: ``hs1$<key id>$<hash tag>$<mac>``. The key id says which key made it (a node with
another key falls back to argon2 and rewrites it); the hash tag binds it to the argon2 hash it
was written with, so that a hash changed behind the CSMS's back (SQL, an old version) makes the
check stale instead of keeping the old password valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from enum import Enum
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEME = "hs1"
KEY_BYTES = 32


class PasswordKeyInvalid(ValueError):
    """The key file exists but holds no usable key (the CLI shows it as a settings error)."""


class CheckResult(Enum):
    MATCH = "match"
    MISMATCH = "mismatch"  # a check made with this key for this hash: the password is wrong
    UNUSABLE = "unusable"  # absent, another key, another hash, or malformed: ask argon2


def _hex_digest(data: bytes, length: int) -> str:
    return hashlib.sha256(data).hexdigest()[:length]


class PasswordCheck:
    """Makes and tests the stored check with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the password check key needs at least 16 bytes")
        self._key = key
        self.key_id = _hex_digest(b"csms-password-check-key\0" + key, 8)

    def _mac(self, station_id: str, password: str, password_hash: str) -> str:
        message = b"\0".join(s.encode() for s in ("ocpp-basic-auth", station_id, password))
        message += b"\0" + password_hash.encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def make(self, station_id: str, password: str, password_hash: str) -> str:
        tag = _hex_digest(password_hash.encode(), 8)
        return f"{_SCHEME}${self.key_id}${tag}${self._mac(station_id, password, password_hash)}"

    def test(
        self, stored: str | None, station_id: str, password: str, password_hash: str
    ) -> CheckResult:
        if not stored:
            return CheckResult.UNUSABLE
        parts = stored.split("$")
        if len(parts) != 4 or parts[0] != _SCHEME or parts[1] != self.key_id:
            return CheckResult.UNUSABLE
        if parts[2] != _hex_digest(password_hash.encode(), 8):
            return CheckResult.UNUSABLE
        expected = self._mac(station_id, password, password_hash)
        if hmac.compare_digest(parts[3], expected):
            return CheckResult.MATCH
        return CheckResult.MISMATCH


def load_or_create_key(path: Path) -> bytes:
    """The key in `path` (hex), created with 32 random bytes (mode 0600) if the file does
    not exist. Nodes that start at once on a shared directory all end up with the key of
    the one that created it first."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(KEY_BYTES) + "\n")
        try:
            os.link(temporary, path)  # atomic, and fails if another process got there first
            log.info("created the station password check key %s", path)
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise PasswordKeyInvalid(
            f"{path}: expected a hex key (e.g. `openssl rand -hex 32`)"
        ) from None
    if len(key) < 16:
        raise PasswordKeyInvalid(f"{path}: the key needs at least 16 bytes (32 hex characters)")
    return key


def default_key_path(database_url: str) -> Path:
    """Beside the SQLite file (csms.db -> csms.password-key); the working directory otherwise."""
    prefix = "sqlite+aiosqlite:///"
    if database_url.startswith(prefix):
        database = database_url[len(prefix) :].split("?", 1)[0]
        if database and database != ":memory:":
            file = Path(database)
            return file.with_name(f"{file.stem}.password-key")
    return Path("csms.password-key")
