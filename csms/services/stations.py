"""Stations: registration, credentials, boot policy, connection state, EVSEs."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from csms.domain.errors import AlreadyExists, CsmsError, InvalidRequest, UnknownStation
from csms.domain.models import BootPolicy, Evse, Page, SecurityProfile, Station, StoredPassword
from csms.domain.ocpp_versions import format_versions, parse_versions
from csms.domain.passwords import PASSWORD_MAX, PASSWORD_MIN, password_length_ok
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.routing.base import CommandRouter
from csms.services.common import Clock, check_page, utcnow
from csms.services.password_check import CheckResult, PasswordCheck
from v2g_shared.ocpp_versions import OcppVersion

log = logging.getLogger(__name__)


def _checked_versions(
    versions: Sequence[OcppVersion] | None,
) -> tuple[OcppVersion, ...] | None:
    if versions is None:
        return None
    try:
        return parse_versions(OcppVersion(v).value for v in versions)
    except ValueError as exc:
        raise InvalidRequest(f"ocpp_versions: {exc}") from exc


STATION_ID_MAX = 48


@dataclass(frozen=True, slots=True)
class ConnectionState:
    connected: bool
    node_id: str | None = None


class StationService:
    def __init__(
        self,
        db: Database,
        router: CommandRouter,
        *,
        clock: Clock = utcnow,
        hasher: PasswordHasher | None = None,
        password_check: PasswordCheck | None = None,
    ) -> None:
        self._db = db
        self._router = router
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        # None: every first connection per process costs an argon2 verification.
        self._password_check = password_check
        self._other_key_warned = False
        # digest(station, password, stored hash) of verified credentials: a reconnect storm
        # costs one argon2 verification per station, and a password change invalidates it.
        self._verified: set[bytes] = set()
        self._argon2_slots = asyncio.Semaphore(os.cpu_count() or 1)
        self._verifications: set[asyncio.Future[bool]] = set()
        self._admission_waiting: dict[
            str, builtins.list[asyncio.Future[tuple[Station, StoredPassword | None] | None]]
        ] = {}
        self._admission_reader: asyncio.Task[None] | None = None

    @staticmethod
    def _check_password(password: str | None, profile: SecurityProfile) -> None:
        if password is None:
            if profile is not SecurityProfile.TLS_CLIENT_CERT:
                raise InvalidRequest(f"security profile {int(profile)} needs a password")
            return
        if not password_length_ok(password):
            raise InvalidRequest(
                f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters (OCPP passwordString)"
            )

    async def create(
        self,
        station_id: str,
        *,
        password: str | None = None,
        security_profile: SecurityProfile = SecurityProfile.BASIC_AUTH,
        boot_policy: BootPolicy = BootPolicy.ACCEPTED,
        ocpp_versions: Sequence[OcppVersion] | None = None,
    ) -> Station:
        """`ocpp_versions`: the versions this station may use, in preference order (None:
        the global setting, CSMS_OCPP_VERSIONS)."""
        if not station_id or len(station_id) > STATION_ID_MAX or "/" in station_id:
            raise InvalidRequest(f"station id must be 1-{STATION_ID_MAX} characters without '/'")
        security_profile = SecurityProfile(security_profile)
        self._check_password(password, security_profile)
        versions = _checked_versions(ocpp_versions)
        stored = await self._store(station_id, password) if password is not None else None
        now = self._clock()
        try:
            await self._db.write(
                lambda c: repo.insert_station(
                    c, station_id, stored, security_profile, BootPolicy(boot_policy), now, versions
                )
            )
        except IntegrityError as exc:
            raise AlreadyExists(f"station {station_id!r} already exists") from exc
        return await self.get(station_id)

    async def get(self, station_id: str) -> Station:
        async with self._db.read() as conn:
            station = await repo.get_station(conn, station_id)
        if station is None:
            raise UnknownStation(station_id)
        return station

    async def list(self, offset: int = 0, limit: int = 50) -> Page[Station]:
        check_page(offset, limit)
        async with self._db.read() as conn:
            return await repo.list_stations(conn, offset, limit)

    async def update(
        self,
        station_id: str,
        *,
        password: str | None = None,
        security_profile: SecurityProfile | None = None,
        boot_policy: BootPolicy | None = None,
        ocpp_versions: Sequence[OcppVersion] | None = None,
    ) -> Station:
        """`ocpp_versions`: None leaves them; an empty list returns the station to the global
        setting; the new list applies from the station's next connection."""
        current = await self.get(station_id)
        values: dict[str, object] = {"updated_at": self._clock()}
        profile = SecurityProfile(security_profile or current.security_profile)
        if password is not None:
            self._check_password(password, profile)
            stored = await self._store(station_id, password)
            values["password_hash"] = stored.hash
            values["password_check"] = stored.check
        elif profile is not SecurityProfile.TLS_CLIENT_CERT and not current.has_password:
            raise InvalidRequest(f"security profile {int(profile)} needs a password")
        if security_profile is not None:
            values["security_profile"] = int(profile)
        if boot_policy is not None:
            values["boot_policy"] = BootPolicy(boot_policy).value
        if ocpp_versions is not None:
            versions = _checked_versions(ocpp_versions) if ocpp_versions else None
            values["ocpp_versions"] = format_versions(versions) if versions else None
        await self._db.write(lambda c: repo.update_station(c, station_id, **values))
        return await self.get(station_id)

    async def delete(self, station_id: str) -> None:
        if not await self._db.write(lambda c: repo.delete_station(c, station_id)):
            raise UnknownStation(station_id)
        # A deleted station keeps no live connection (it could not reconnect anyway: 404).
        try:
            await self._router.disconnect(station_id, "station deleted")
        except CsmsError as exc:  # e.g. the broker is down: the row is gone all the same
            log.warning(
                "station %s deleted, but its connection was not closed: %s", station_id, exc
            )

    async def ocpp_version(self, station_id: str) -> OcppVersion | None:
        """The OCPP version the station speaks: negotiated on its current (or last)
        connection, on whichever node holds it; None if it never connected. UnknownStation."""
        return (await self.get(station_id)).ocpp_version

    async def record_ocpp_version(self, station: Station, version: OcppVersion) -> None:
        """Keep the version negotiated on a connection (one write, only when it changed)."""
        if station.ocpp_version is version:
            return
        await self._db.write(lambda c: repo.record_ocpp_version(c, station.id, version))

    async def connection_state(self, station_id: str) -> ConnectionState:
        node = await self._router.node_of(station_id)
        return ConnectionState(connected=node is not None, node_id=node)

    async def evses(self, station_id: str) -> builtins.list[Evse]:
        await self.get(station_id)
        async with self._db.read() as conn:
            return await repo.list_evses(conn, station_id)

    # -- used by the websocket handshake --
    async def auth_info(
        self, station_id: str
    ) -> tuple[SecurityProfile, StoredPassword | None] | None:
        async with self._db.read() as conn:
            return await repo.get_station_auth(conn, station_id)

    async def admission(self, station_id: str) -> tuple[Station, StoredPassword | None] | None:
        """The station and its stored password, read now: what a connecting (or booting)
        station needs. Lookups that arrive while one is running are read together in one
        query (a connect storm costs a few reads, not one per station)."""
        future: asyncio.Future[tuple[Station, StoredPassword | None] | None]
        future = asyncio.get_running_loop().create_future()
        self._admission_waiting.setdefault(station_id, []).append(future)
        if self._admission_reader is None:
            self._admission_reader = asyncio.create_task(self._read_admissions())
        return await future

    async def _read_admissions(self) -> None:
        try:
            while self._admission_waiting:
                batch, self._admission_waiting = self._admission_waiting, {}
                ids = builtins.list(batch)
                try:
                    found: dict[str, tuple[Station, StoredPassword | None]] = {}
                    async with self._db.read() as conn:
                        for start in range(0, len(ids), 500):
                            found.update(
                                await repo.get_stations_for_admission(
                                    conn, ids[start : start + 500]
                                )
                            )
                except Exception as exc:
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for station_id, futures in batch.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(found.get(station_id))
        finally:
            self._admission_reader = None

    async def verify_password(self, station_id: str, password: str, stored: StoredPassword) -> bool:
        password_hash = stored.hash
        key = hashlib.sha256(
            b"\0".join(s.encode() for s in (station_id, password, password_hash))
        ).digest()
        if key in self._verified:
            return True
        if self._password_check is not None:
            result = self._password_check.test(stored.check, station_id, password, password_hash)
            if result is CheckResult.MATCH:
                self._remember(key)
                return True
            if result is CheckResult.MISMATCH:
                return False
            self._warn_if_other_key(stored.check)
        # One verification per core at a time: argon2 is CPU and memory bound (~150 ms and
        # 64 MiB each with the defaults); more at once only adds memory and latency. A
        # handshake that gives up while waiting for a slot leaves the queue.
        await self._argon2_slots.acquire()
        if key in self._verified:  # verified while this one waited
            self._argon2_slots.release()
            return True
        # Once started, a verification finishes and is cached even if the handshake that
        # asked for it timed out: in a reconnect storm the station's retry then gets in.
        verification = asyncio.ensure_future(
            self._verify_in_slot(key, station_id, password, password_hash)
        )
        self._verifications.add(verification)
        verification.add_done_callback(self._verifications.discard)
        return await asyncio.shield(verification)

    async def _verify_in_slot(
        self, key: bytes, station_id: str, password: str, password_hash: str
    ) -> bool:
        try:
            ok = await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        finally:
            self._argon2_slots.release()
        if ok:
            self._remember(key)
            await self._write_check(station_id, password, password_hash)
        return bool(ok)

    def _remember(self, key: bytes) -> None:
        if len(self._verified) > 100_000:
            self._verified.clear()
        self._verified.add(key)

    async def _write_check(self, station_id: str, password: str, password_hash: str) -> None:
        """After an argon2 verification: store the fast check, so that the next process
        (or node) admits this station in microseconds. Best effort: admission goes on."""
        if self._password_check is None:
            return
        check = self._password_check.make(station_id, password, password_hash)
        try:
            await self._db.write(
                lambda c: repo.set_password_check(c, station_id, password_hash, check)
            )
        except Exception:
            log.warning("could not store the password check of %s", station_id, exc_info=True)

    def _warn_if_other_key(self, check: str | None) -> None:
        other_key = (
            check is not None
            and self._password_check is not None
            and check.split("$")[1:2] != [self._password_check.key_id]
        )
        if other_key and not self._other_key_warned:
            self._other_key_warned = True
            log.warning(
                "station password checks were made with another key than this node's: "
                "nodes should share one password_key_file; falling back to argon2"
            )

    async def _store(self, station_id: str, password: str) -> StoredPassword:
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        check = (
            self._password_check.make(station_id, password, password_hash)
            if self._password_check
            else None
        )
        return StoredPassword(password_hash, check)
