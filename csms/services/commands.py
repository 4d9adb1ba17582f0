"""CSMS -> station commands: validate, route to the station, return its answer.

Version-aware: the station's OCPP version (negotiated on its connection, stored on the
station) decides which actions exist and which schema a payload is validated against; the
payload validated is the payload sent, unchanged. A station that never connected is judged
by the oldest version that has the action (it cannot be reached before it connects anyway).
"""

from __future__ import annotations

import asyncio
from typing import Any

from csms.domain import rules
from csms.domain.errors import (
    ActionNotInVersion,
    CommandSchemaErrors,
    CommandValidationError,
    StationOffline,
    TokenNotAllowed,
    UnknownStation,
)
from csms.domain.models import ChargingProfileRecord, IdTokenStatus, Station, TransactionState
from csms.oca_schemas import (
    ANY_VERSION_CSMS_INITIATED,
    RequestRefused,
    check_request,
    table,
    versions_with_action,
)
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.routing.base import CommandRouter
from csms.services.common import Clock, parse_ocpp_datetime, utcnow
from csms.services.profiles_check import check_set_charging_profile
from v2g_shared.ocpp_versions import OcppVersion

_SPLIT_ITEMS = {
    "GetVariables": ("getVariableData", "getVariableResult", "GetVariables"),
    "SetVariables": ("setVariableData", "setVariableResult", "SetVariables"),
}


class CommandService:
    def __init__(
        self,
        db: Database,
        router: CommandRouter,
        *,
        default_timeout: float = 25.0,
        negative_limit_is_discharge: bool = True,
        clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self._router = router
        self._default_timeout = default_timeout
        self._negative_limit_is_discharge = negative_limit_is_discharge
        self._clock = clock

    @staticmethod
    def validate_request(
        action: str, payload: dict[str, Any], version: OcppVersion = OcppVersion.V201
    ) -> None:
        """Raise CommandValidationError unless `payload` is a valid `action` request of
        `version`: once, against the OCA schema and the bounds (CommandSchemaErrors lists every
        violation). Always on (whatever settings.validate_messages says): commands come from
        API users and CSMS code."""
        try:
            check_request(action, payload, version)
        except RequestRefused as refused:
            if refused.errors:
                raise CommandSchemaErrors(action, refused.errors) from refused
            violation = refused.violation
            raise CommandValidationError(action, violation.message, violation.path) from refused

    async def send(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float | None = None,  # noqa: ASYNC109 -- travels through the router
    ) -> dict[str, Any]:
        """Send `action` to the station unchanged and return its CALLRESULT payload. The
        station is looked up once, then the payload validated once (404 before 422).

        Raises CommandValidationError, UnknownStation, StationOffline, CommandTimeout,
        CallErrorReceived or StationDisconnected (csms.domain.errors).
        """
        if action not in ANY_VERSION_CSMS_INITIATED:
            raise CommandValidationError(action, "not an action the CSMS can send")
        async with self._db.read() as conn:
            station = await repo.get_station(conn, station_id)
        if station is None:
            raise UnknownStation(station_id)
        version = self.version_for(station, action)
        self.validate_request(action, payload, version)
        if action == "SetChargingProfile":
            # K01 rules first: an invalid profile is 422 whether or not the station is online.
            await self._check_profile(station_id, payload, version)
        elif action == "RequestStartTransaction":
            await self._check_remote_start_token(payload["idToken"])
        if not await self._router.is_connected(station_id):
            raise StationOffline(station_id)
        wait = self._default_timeout if timeout is None else timeout
        if action in _SPLIT_ITEMS:
            response = await self._send_split(station_id, action, payload, wait)
        else:
            response = await self._router.call(station_id, action, payload, wait)
        await self._after(station_id, action, payload, response)
        return response

    @staticmethod
    def version_for(station: Station, action: str) -> OcppVersion:
        """The version `action` is judged by for `station`; ActionNotInVersion if its version
        lacks the action."""
        version = station.ocpp_version
        if version is None:  # never connected: the oldest version that has the action
            version = next(v for v in versions_with_action(action))
        if action not in table(version).csms_to_cs:
            defined_in = ", ".join(v.label for v in versions_with_action(action))
            raise ActionNotInVersion(action, station.id, version.label, defined_in)
        return version

    async def _send_split(
        self, station_id: str, action: str, payload: dict[str, Any], wait_s: float
    ) -> dict[str, Any]:
        """Get/SetVariables in chunks of the station's ItemsPerMessage, results joined (B06)."""
        items_key, results_key, instance = _SPLIT_ITEMS[action]
        items = payload[items_key]
        async with self._db.read() as conn:
            found = await repo.list_device_variables(conn, station_id, "DeviceDataCtrlr")
        # 2.0.1 device model: ItemsPerMessage[GetVariables]; some stations report the
        # configuration-variable name ItemsPerMessageGetVariables instead.
        limit = next(
            (
                n
                for v in found
                if v.attribute_type == "Actual"
                and (
                    (v.variable == "ItemsPerMessage" and v.variable_instance == instance)
                    or v.variable == f"ItemsPerMessage{instance}"
                )
                and (n := _int_or_none(v.value)) is not None
            ),
            None,
        )
        if limit is None or limit <= 0 or len(items) <= limit:
            return await self._router.call(station_id, action, payload, wait_s)
        results: list[Any] = []
        for start in range(0, len(items), limit):
            part = {**payload, items_key: items[start : start + limit]}
            answer = await self._router.call(station_id, action, part, wait_s)
            results.extend(answer.get(results_key, []))
        return {results_key: results}

    async def _check_remote_start_token(self, id_token: dict[str, Any]) -> None:
        """A token on file that may not charge (Blocked, Expired, ...) is refused here (409)
        rather than started and then stopped at once by the station. A token not on file is
        fine: the CSMS accepts it on that station because it sent it (rules.remote_start_covers)."""
        token, type_ = id_token["idToken"], id_token["type"]
        if type_ == "NoAuthorization":
            return
        async with self._db.read() as conn:
            record = await repo.get_id_token(conn, token, type_)
        status = rules.authorize(record, self._clock()).status
        if status not in (IdTokenStatus.ACCEPTED, IdTokenStatus.UNKNOWN):
            raise TokenNotAllowed(token, type_, status.value)

    async def _check_profile(
        self, station_id: str, payload: dict[str, Any], version: OcppVersion
    ) -> None:
        async with self._db.read() as conn:
            evses = await repo.list_evses(conn, station_id)
            stored = await repo.list_charging_profiles(conn, station_id)
            active = await repo.list_transactions(
                conn, 0, 1000, station_id, TransactionState.ACTIVE
            )
            variables = await repo.list_device_variables(conn, station_id, "SmartChargingCtrlr")
            v2x = await repo.list_device_variables(conn, station_id, "V2XCtrlr")
        actual = {v.variable: v.value for v in variables if v.attribute_type == "Actual"}
        modes = next(
            (
                v.value
                for v in v2x
                if v.attribute_type == "Actual" and v.variable == "SupportedOperationModes"
            ),
            None,
        )
        check_set_charging_profile(
            payload,
            known_evse_ids=[e.evse_id for e in evses if e.evse_id > 0],
            active_transactions=rules.running_transaction_by_evse(active.items),
            stored=stored,
            negative_limit_is_discharge=self._negative_limit_is_discharge,
            max_stack_level=_int_or_none(actual.get("ProfileStackLevel")),
            max_periods=_int_or_none(actual.get("PeriodsPerSchedule")),
            # 2.1: what the shared profile model cannot represent (operation modes without a
            # limit, Dynamic kind, new purposes) was checked by the 2.1 schema; sent unchanged.
            schema_checked_only=version is OcppVersion.V21,
            ocpp_2_1=version is OcppVersion.V21,
            supported_operation_modes=modes,
        )

    async def _after(
        self, station_id: str, action: str, payload: dict[str, Any], response: dict[str, Any]
    ) -> None:
        """Keep the CSMS's view of the station's charging profiles in step."""
        if response.get("status") != "Accepted":
            return
        now = self._clock()
        if action == "SetChargingProfile":
            record = profile_record(station_id, int(payload["evseId"]), payload["chargingProfile"])
            await self._db.write(lambda c: repo.upsert_charging_profile(c, record, now))
        elif action == "ClearChargingProfile":
            criteria = payload.get("chargingProfileCriteria") or {}
            profile_id = payload.get("chargingProfileId")
            await self._db.write(
                lambda c: repo.delete_charging_profiles(
                    c,
                    station_id,
                    profile_id=profile_id,
                    evse_id=criteria.get("evseId"),
                    purpose=criteria.get("chargingProfilePurpose"),
                    stack_level=criteria.get("stackLevel"),
                )
            )

    async def send_many(
        self, station_ids: list[str], action: str, payload: dict[str, Any]
    ) -> dict[str, dict[str, Any] | Exception]:
        """The same command to several stations at once; each gets its answer or its error."""
        results = await asyncio.gather(
            *(self.send(s, action, payload) for s in station_ids), return_exceptions=True
        )
        out: dict[str, dict[str, Any] | Exception] = {}
        for station_id, result in zip(station_ids, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            out[station_id] = result
        return out


def profile_record(
    station_id: str, evse_id: int, profile: dict[str, Any], source: str = "SetChargingProfile"
) -> ChargingProfileRecord:
    return ChargingProfileRecord(
        station_id=station_id,
        evse_id=evse_id,
        profile_id=int(profile["id"]),
        purpose=profile["chargingProfilePurpose"],
        stack_level=int(profile["stackLevel"]),
        kind=profile["chargingProfileKind"],
        profile=profile,
        transaction_id=profile.get("transactionId"),
        valid_from=parse_ocpp_datetime(profile["validFrom"]) if profile.get("validFrom") else None,
        valid_to=parse_ocpp_datetime(profile["validTo"]) if profile.get("validTo") else None,
        source=source,
    )


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
