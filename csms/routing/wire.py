"""What CSMS nodes send each other through a broker (NATS or Redis), the same on both: broker
names for stations and nodes, the presence record, a command and its answer. Pure: no I/O.

- `broker_token`: a station or node id as one NATS subject token / KV key / Redis key part.
- Presence record (`Holder`): "<incarnation> <node id>"; `Claimed` adds the revision it was
  written at (the broker's global order).
- Command request: JSON {"station", "action", "payload", "timeout"}; answer: {"result": ...} or
  {"error": {"type": ..., ...}}, which the caller raises again as the same typed error.
- `DISCONNECT_ACTION`: a router-internal request that closes the station's socket.
- Notices every node receives (`Notice`): JSON {"event": "claim", "station", "node", "inc",
  "revision"}, {"event": "release", "station", "node", "revision"}, {"event": "node-up" or
  "node-down", "node", "inc"}; a notice without "event" is a claim (older senders).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from csms.domain.errors import (
    CallErrorReceived,
    CommandNotAllowed,
    CommandTimeout,
    CsmsError,
    StationDisconnected,
    StationOffline,
)

PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def broker_token(name: str) -> str:
    """`name` as one NATS subject token / KV key / Redis key part: kept when plain, else
    hex-encoded behind `x.` (no plain name contains a dot, so the two never collide)."""
    if PLAIN_TOKEN.fullmatch(name):
        return name
    return "x." + name.encode().hex()


# A router-internal request (OCPP action names never start with "$"): close the station's socket.
DISCONNECT_ACTION = "$disconnect"


class RemoteCommandFailed(CsmsError):
    """The holding node failed to run the command for a reason that is not a station error."""


def encode_request(station_id: str, action: str, payload: dict[str, Any], timeout: float) -> bytes:
    return orjson.dumps(
        {"station": station_id, "action": action, "payload": payload, "timeout": timeout}
    )


def decode_request(data: bytes) -> tuple[str, str, dict[str, Any], float]:
    body = orjson.loads(data)
    return str(body["station"]), str(body["action"]), dict(body["payload"]), float(body["timeout"])


def encode_result(result: dict[str, Any]) -> bytes:
    return orjson.dumps({"result": result})


def encode_error(error: Exception) -> bytes:
    """A typed error the caller raises again (`decode_answer`)."""
    fields: dict[str, Any]
    if isinstance(error, CallErrorReceived):
        fields = {
            "type": "CallErrorReceived",
            "code": error.code,
            "description": error.description,
            "details": error.details,
        }
    elif isinstance(error, CommandTimeout):
        fields = {
            "type": "CommandTimeout",
            "station": error.station_id,
            "action": error.action,
            "timeout": error.timeout,
        }
    elif isinstance(error, StationDisconnected | StationOffline):
        fields = {"type": type(error).__name__, "station": error.station_id}
    elif isinstance(error, CommandNotAllowed):
        fields = {
            "type": "CommandNotAllowed",
            "station": error.station_id,
            "action": error.action,
            "state": error.state,
        }
    else:
        fields = {"type": "RemoteCommandFailed", "message": f"{type(error).__name__}: {error}"}
    return orjson.dumps({"error": fields})


def decode_answer(data: bytes) -> dict[str, Any]:
    """The command's result, or raise the error the holding node reported."""
    body = orjson.loads(data)
    if "result" in body:
        return dict(body["result"])
    error = body.get("error") or {}
    kind = error.get("type")
    if kind == "CallErrorReceived":
        raise CallErrorReceived(
            str(error["code"]), str(error.get("description", "")), error.get("details") or {}
        )
    if kind == "CommandTimeout":
        raise CommandTimeout(str(error["station"]), str(error["action"]), float(error["timeout"]))
    if kind == "StationOffline":
        raise StationOffline(str(error["station"]))
    if kind == "StationDisconnected":
        raise StationDisconnected(str(error["station"]))
    if kind == "CommandNotAllowed":
        raise CommandNotAllowed(str(error["station"]), str(error["action"]), str(error["state"]))
    raise RemoteCommandFailed(str(error.get("message", "the holding node failed the command")))


@dataclass(frozen=True)
class Holder:
    node_id: str
    incarnation: str

    def encode(self) -> str:
        return f"{self.incarnation} {self.node_id}"

    @classmethod
    def decode(cls, text: str) -> Holder | None:
        incarnation, _, node_id = text.partition(" ")
        return cls(node_id, incarnation) if node_id else None


@dataclass(frozen=True)
class Claimed:
    """A presence record: who holds the station, and the revision its claim was written at."""

    holder: Holder
    revision: int


@dataclass(frozen=True)
class Notice:
    """A claim, release, node-up or node-down notice (other events: ignored by receivers)."""

    event: str
    node_id: str
    station_id: str | None = None
    revision: int | None = None
    incarnation: str | None = None


def claim_notice(station_id: str, node_id: str, incarnation: str, revision: int) -> Notice:
    return Notice("claim", node_id, station_id, revision, incarnation)


def release_notice(station_id: str, node_id: str, revision: int) -> Notice:
    return Notice("release", node_id, station_id, revision)


def node_notice(event: str, node_id: str, incarnation: str) -> Notice:
    """`event`: "node-up" or "node-down"."""
    return Notice(event, node_id, incarnation=incarnation)


def notice_fields(notice: Notice) -> dict[str, Any]:
    """The notice as it is sent (JSON object fields, in this order)."""
    if notice.event == "claim":
        return {
            "event": "claim",
            "station": notice.station_id,
            "node": notice.node_id,
            "inc": notice.incarnation,
            "revision": notice.revision,
        }
    if notice.event == "release":
        return {
            "event": "release",
            "station": notice.station_id,
            "node": notice.node_id,
            "revision": notice.revision,
        }
    return {"event": notice.event, "node": notice.node_id, "inc": notice.incarnation}


def encode_notice(notice: Notice) -> bytes:
    return orjson.dumps(notice_fields(notice))


def decode_notice(data: bytes) -> Notice:
    """Raise (KeyError, ValueError, TypeError, orjson.JSONDecodeError) on a malformed notice."""
    body = orjson.loads(data)
    event = str(body.get("event", "claim"))
    node_id = str(body["node"])
    if event == "claim":
        incarnation = body.get("inc")
        return Notice(
            event,
            node_id,
            str(body["station"]),
            int(body["revision"]),
            None if incarnation is None else str(incarnation),
        )
    if event == "release":
        return Notice(event, node_id, str(body["station"]), int(body["revision"]))
    if event in ("node-up", "node-down"):
        return Notice(event, node_id, incarnation=str(body["inc"]) if "inc" in body else None)
    return Notice(event, node_id)


__all__ = [
    "DISCONNECT_ACTION",
    "PLAIN_TOKEN",
    "Claimed",
    "Holder",
    "Notice",
    "RemoteCommandFailed",
    "broker_token",
    "claim_notice",
    "decode_answer",
    "decode_notice",
    "decode_request",
    "encode_error",
    "encode_notice",
    "encode_request",
    "encode_result",
    "node_notice",
    "notice_fields",
    "release_notice",
]
