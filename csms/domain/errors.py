"""Errors services and routers raise; the API maps them to HTTP, the edge to OCPP."""

from __future__ import annotations

from typing import Any


class CsmsError(Exception):
    """Base of every CSMS service error."""


class NotFound(CsmsError):
    pass


class UnknownStation(NotFound):
    def __init__(self, station_id: str) -> None:
        super().__init__(f"unknown station {station_id!r}")
        self.station_id = station_id


class AlreadyExists(CsmsError):
    pass


class InvalidRequest(CsmsError):
    """Input the CSMS refuses before doing anything (bad password length, bad profile, ...)."""


class CommandValidationError(InvalidRequest):
    """A command payload that does not match the OCA request schema (or K01 rules)."""

    def __init__(self, action: str, message: str, path: str = "") -> None:
        where = f" at {path}" if path else ""
        super().__init__(f"{action} request invalid{where}: {message}")
        self.action = action
        self.path = path
        self.detail = message
        self.errors = [{"field": path or "(payload)", "message": message}]


class ActionNotInVersion(CommandValidationError):
    """An action the station's OCPP version does not have (e.g. SetDERControl to 2.0.1)."""

    def __init__(self, action: str, station_id: str, version: str, defined_in: str) -> None:
        super().__init__(
            action,
            f"station {station_id!r} speaks OCPP {version}; {action} exists only in "
            f"OCPP {defined_in}",
        )
        self.station_id = station_id
        self.version = version


class CommandSchemaErrors(CommandValidationError):
    """A command payload that breaks its OCA request schema: every violation, each with its
    field ({"field", "message"}), most specific first."""

    def __init__(self, action: str, errors: list[dict[str, str]]) -> None:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        InvalidRequest.__init__(self, f"invalid {action} request: {summary}")
        self.action = action
        self.path = errors[0]["field"] if errors else ""
        self.detail = summary
        self.errors = errors


class StationOffline(CsmsError):
    def __init__(self, station_id: str) -> None:
        super().__init__(f"station {station_id!r} is not connected")
        self.station_id = station_id


class StationDisconnected(CsmsError):
    """The station's connection went away while a command waited for its answer."""

    def __init__(self, station_id: str) -> None:
        super().__init__(f"station {station_id!r} disconnected before answering")
        self.station_id = station_id


class CommandTimeout(CsmsError):
    def __init__(self, station_id: str, action: str, timeout: float) -> None:
        super().__init__(f"{action} to {station_id!r}: no answer within {timeout:g} s")
        self.station_id = station_id
        self.action = action
        self.timeout = timeout


class CallErrorReceived(CsmsError):
    """The station answered with a CALLERROR."""

    def __init__(self, code: str, description: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"station answered CALLERROR {code}: {description}")
        self.code = code
        self.description = description
        self.details = details or {}


class CommandNotAllowed(CsmsError):
    """The station's registration state forbids this command (B02/B03: Pending, Rejected)."""

    def __init__(self, station_id: str, action: str, state: str) -> None:
        super().__init__(f"{action} may not be sent to {station_id!r} while it is {state}")
        self.station_id = station_id
        self.action = action
        self.state = state


class TokenNotAllowed(CsmsError):
    """A remote start with an idToken on file that may not charge (Blocked, Expired, ...)."""

    def __init__(self, id_token: str, type_: str, status: str) -> None:
        super().__init__(f"idToken {id_token!r} ({type_}) is {status}: not started")
        self.id_token = id_token
        self.status = status


class BrokerUnavailable(CsmsError):
    """The message broker between CSMS nodes did not answer (several-node deployments)."""

    def __init__(self, station_id: str, reason: str) -> None:
        super().__init__(f"cannot reach the node holding {station_id!r}: broker error: {reason}")
        self.station_id = station_id
        self.reason = reason
