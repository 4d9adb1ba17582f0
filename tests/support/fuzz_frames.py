"""Frames that try to harm a CSMS: malformed OCPP-J, schema-shaped CALLs for every CS -> CSMS
action with mutated values, and sequences that matter (TransactionEvent, NotifyReport).

One generator, `FrameFuzzer`, draws every choice from a `random.Random`: seeded for the
benchmark (`FrameFuzzer(random.Random(seed))`), or Hypothesis-controlled for the tests
(`scenarios()`, `malformed_frames()`, ... wrap `st.randoms(use_true_random=False)`).

Payloads are built from the OCA schemas shipped in the `ocpp` package, so every action and
every field is covered without a hand-written table. Values orjson cannot write (integers
outside 64 bits, nesting deeper than 254, `1e400`) go in as `Raw` JSON text.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import json
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import websockets
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from csms.oca_schemas import CS_TO_CSMS_ACTIONS, TABLES
from v2g_shared.ocpp_versions import OcppVersion

ACTIONS: tuple[str, ...] = tuple(sorted(CS_TO_CSMS_ACTIONS))
# The station -> CSMS CALLs of each version (2.1 adds its own; its SEND-only messages too,
# which a hostile station may still send as a CALL).
ACTIONS_BY_VERSION: dict[OcppVersion, tuple[str, ...]] = {
    version: tuple(sorted(table.cs_to_csms)) for version, table in TABLES.items()
}

# OCPP-J 2.0.1 (Part 4, 4.2.3) CALLERROR codes; 2.0.1 spells "Occurence" with one "r".
OCPP_ERROR_CODES = frozenset(
    {
        "FormatViolation",
        "GenericError",
        "InternalError",
        "MessageTypeNotSupported",
        "NotImplemented",
        "NotSupported",
        "OccurenceConstraintViolation",
        "PropertyConstraintViolation",
        "ProtocolError",
        "RpcFrameworkError",
        "SecurityError",
        "TypeConstraintViolation",
    }
)
# OCPP-J 2.1 corrects the spelling to "Occurrence" (two r's); the rest is the same.
OCPP_21_ERROR_CODES = (OCPP_ERROR_CODES - {"OccurenceConstraintViolation"}) | {
    "OccurrenceConstraintViolation"
}
ERROR_CODES_BY_SUBPROTOCOL = {"ocpp2.0.1": OCPP_ERROR_CODES, "ocpp2.1": OCPP_21_ERROR_CODES}

# Numbers at the edges of what a schema "integer", a database column and an algorithm hold.
EXTREME_NUMBERS: tuple[int | float, ...] = (
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,  # orjson reads it as a float
    -(2**63),
    -(2**63) - 1,
    10**7,
    1e19,
    1e30,
    5.0,
    -0.0,
    0.5,
    1e308,
    5e-324,
)
# Text that is a number only to some parsers.
RAW_NUMBERS: tuple[str, ...] = ("1e400", "-1e400", "1E19", "-0", "1" * 400, "0.1e-400")

EXTREME_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "\u0000",
    "a\u0000b",
    "\u202eRTL\u202c",
    "\U0001f50c\U0001f697" * 8,
    "é" * 300,
    "%s%n%x",
    "'; DROP TABLE stations; --",
    "../../etc/passwd",
    "${jndi:ldap://127.0.0.1/x}",
    "\r\n\t",
    "9999-12-31T23:59:59.999Z",
    "0000-01-01T00:00:00Z",
    "2026-13-45T99:99:99Z",
    "2026-01-02T03:04:05+14:00",
    "2026-01-02",
    "NaN",
    "-1",
    "null",
)
DATE_TIMES = ("2026-01-02T03:04:05.000Z", "2026-01-02T03:04:05Z", "2025-12-31T23:59:59.999Z")
NESTING_DEPTHS = (32, 100, 255, 500, 900, 1100)
MAX_STRING = 64 * 1024  # longest string a mutation writes
MAX_ARRAY_BYTES = 256 * 1024  # a "huge array" stops growing here


@dataclass(frozen=True)
class Raw:
    """JSON text put into a payload as-is (orjson cannot write it, or must not see it)."""

    text: str


@dataclass(frozen=True)
class Frame:
    """One websocket message for the attacker to send.

    reply_id: the message id the CSMS must answer with (a CALLERROR for an unreadable frame
    may carry "-1" instead); None when no answer is owed (CALLRESULT/CALLERROR from the
    station, binary frames).
    """

    data: str | bytes
    label: str
    reply_id: str | None


def encode(value: Any) -> str:
    """JSON text of `value`, with every `Raw` spliced in verbatim."""
    raws: list[str] = []

    def swap(node: Any) -> Any:
        if isinstance(node, Raw):
            raws.append(node.text)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(node, int) and not isinstance(node, bool) and not -(2**63) <= node < 2**64:
            return swap(Raw(str(node)))
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    text = orjson.dumps(swap(value)).decode()
    for index, raw in enumerate(raws):
        text = text.replace(f'"\\u0000raw{index}\\u0000"', raw, 1)
    return text


def deep(depth: int, kind: str = "list") -> Raw:
    """`depth` levels of nested arrays or objects, as text (no recursion anywhere)."""
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


@functools.cache
def request_schema(action: str, version: OcppVersion = OcppVersion.V201) -> dict[str, Any]:
    package = "ocpp.v21" if version is OcppVersion.V21 else "ocpp.v201"
    path = resources.files(package).joinpath("schemas", f"{action}Request.json")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


# A path into a payload, with the (resolved) schema of the node there.
JsonPath = tuple[str | int, ...]


@dataclass
class Node:
    path: JsonPath
    schema: dict[str, Any]
    required: bool


class FrameFuzzer:
    """Draws frames from `rng`. Message ids are unique per fuzzer ("fz<n>")."""

    def __init__(
        self,
        rng: random.Random,
        *,
        id_prefix: str = "fz",
        version: OcppVersion = OcppVersion.V201,
    ) -> None:
        self.rng = rng
        self.version = version
        self.actions = ACTIONS_BY_VERSION[version]
        self._prefix = id_prefix
        self._count = 0

    # ---- small draws --------------------------------------------------------------------

    def message_id(self) -> str:
        self._count += 1
        return f"{self._prefix}{self._count}"

    def _pick(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def _text(self, max_length: int) -> str:
        length = self.rng.randint(1, max(1, min(max_length, 12)))
        return "".join(self._pick("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(length))

    # ---- schema-valid values ------------------------------------------------------------

    def valid_payload(self, action: str) -> tuple[dict[str, Any], list[Node]]:
        """A schema-valid request for `action` and every node it contains."""
        schema = request_schema(action, self.version)
        nodes: list[Node] = []
        payload = self._value(schema, schema.get("definitions", {}), (), True, nodes)
        assert isinstance(payload, dict)
        return payload, nodes

    def _value(
        self,
        schema: dict[str, Any],
        definitions: dict[str, Any],
        path: JsonPath,
        required: bool,
        nodes: list[Node],
    ) -> Any:
        if "$ref" in schema:
            schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
        nodes.append(Node(path, schema, required))
        kind = schema.get("type")
        if "enum" in schema:
            return self._pick(schema["enum"])
        if kind == "object":
            out: dict[str, Any] = {}
            needed = set(schema.get("required", ()))
            for name, sub in schema.get("properties", {}).items():
                chance = 0.02 if name == "customData" else 0.35
                if name in needed or self.rng.random() < chance:
                    out[name] = self._value(sub, definitions, (*path, name), name in needed, nodes)
            return out
        if kind == "array":
            low = schema.get("minItems", 0)
            high = min(schema.get("maxItems", low + 2), low + 2)
            count = self.rng.randint(low, max(low, high))
            return [
                self._value(schema.get("items", {}), definitions, (*path, i), True, nodes)
                for i in range(count)
            ]
        if kind == "string":
            if schema.get("format") == "date-time":
                return self._pick(DATE_TIMES)
            name = path[-1] if path else ""
            if name == "transactionId":
                return f"FZTX{self.rng.randint(1, 4)}"
            return self._text(schema.get("maxLength", 20))
        if kind in ("integer", "number"):
            low = schema.get("minimum", 0)
            high = schema.get("maximum", 3 if self.rng.random() < 0.8 else 999)
            if kind == "integer":
                return self.rng.randint(int(low), max(int(low), int(high)))
            return round(self.rng.uniform(low, max(low, high)), 1)
        if kind == "boolean":
            return self.rng.random() < 0.5
        return {"any": self._text(8)}  # untyped (DataTransfer.data): any JSON

    # ---- mutations ----------------------------------------------------------------------

    def mutated_payload(self, action: str) -> tuple[dict[str, Any], str]:
        """A schema-shaped payload with 1-3 mutations, and a label naming them."""
        payload, nodes = self.valid_payload(action)
        labels = []
        for _ in range(self.rng.randint(1, 3)):
            mutation = self._pick(MUTATIONS)
            label = mutation(self, payload, nodes)
            if label:
                labels.append(label)
        return payload, "; ".join(labels) or "unchanged"

    def _node(
        self, payload: dict[str, Any], nodes: list[Node], want: Callable[[Node], bool]
    ) -> Node | None:
        found = [n for n in nodes if n.path and _resolves(payload, n.path) and want(n)]
        return self._pick(found) if found else None

    def _extreme_number(self, payload: dict[str, Any], nodes: list[Node]) -> str:
        node = self._node(payload, nodes, lambda n: n.schema.get("type") in ("integer", "number"))
        if node is None:
            node = self._node(payload, nodes, lambda n: True)
        if node is None:
            return ""
        value: Any = (
            Raw(self._pick(RAW_NUMBERS)) if self.rng.random() < 0.1 else self._pick(EXTREME_NUMBERS)
        )
        _set(payload, node.path, value)
        return f"{_dotted(node.path)}={_show(value)}"

    def _extreme_string(self, payload: dict[str, Any], nodes: list[Node]) -> str:
        node = self._node(payload, nodes, lambda n: n.schema.get("type") == "string")
        if node is None:
            return ""
        if self.rng.random() < 0.25:
            length = self._pick((256, 1025, 4096, MAX_STRING))
            value = "x" * length
            shown = f"'x'*{length}"
        else:
            value = self._pick(EXTREME_STRINGS)
            shown = repr(value)[:40]
        _set(payload, node.path, value)
        return f"{_dotted(node.path)}={shown}"

    def _deep_nesting(self, payload: dict[str, Any], nodes: list[Node]) -> str:
        depth = self._pick(NESTING_DEPTHS)
        kind = self._pick(("list", "dict"))
        # customData and DataTransfer.data take any JSON: there, deep nesting is schema-valid.
        node = self._node(payload, nodes, lambda n: n.path[-1] in ("data", "customData"))
        if node is None or self.rng.random() < 0.3:
            node = self._node(payload, nodes, lambda n: True)
        if node is None:
            payload["data"] = deep(depth, kind)
            return f"data=<{kind} nested {depth}>"
        value: Any = deep(depth, kind)
        if node.path[-1] == "customData":
            value = {"vendorId": "fz", "x": value}
        _set(payload, node.path, value)
        return f"{_dotted(node.path)}=<{kind} nested {depth}>"

    def _drop_required(self, payload: dict[str, Any], nodes: list[Node]) -> str:
        node = self._node(payload, nodes, lambda n: n.required and isinstance(n.path[-1], str))
        if node is None:
            return ""
        _delete(payload, node.path)
        return f"without {_dotted(node.path)}"

    def _extra_field(self, payload: dict[str, Any], nodes: list[Node]) -> str:
        node = self._node(
            payload,
            nodes,
            lambda n: n.schema.get("type") == "object" and isinstance(_get(payload, n.path), dict),
        )
        target = _get(payload, node.path) if node is not None else payload
        target["notInTheSchema"] = self._pick((1, "x", None, [], {}))
        return f"extra field at {_dotted(node.path) if node else '$'}"

    def _wrong_type(self, payload: dict[str, Any], nodes: list[Node]) -> str:
        node = self._node(payload, nodes, lambda n: True)
        if node is None:
            return ""
        value = self._pick((None, True, "1", [], {}, [1], 1, 1.5))
        _set(payload, node.path, value)
        return f"{_dotted(node.path)}={_show(value)} (wrong type)"

    def _wrong_enum(self, payload: dict[str, Any], nodes: list[Node]) -> str:
        node = self._node(payload, nodes, lambda n: "enum" in n.schema)
        if node is None:
            return ""
        first = str(node.schema["enum"][0])
        value = self._pick(("NotAnEnumValue", first.lower(), first.upper(), first + " ", ""))
        _set(payload, node.path, value)
        return f"{_dotted(node.path)}={value!r} (not in enum)"

    def _huge_array(self, payload: dict[str, Any], nodes: list[Node]) -> str:
        node = self._node(
            payload,
            nodes,
            lambda n: n.schema.get("type") == "array" and isinstance(_get(payload, n.path), list),
        )
        if node is None:
            return ""
        items = _get(payload, node.path)
        if not items:
            _set(payload, node.path, [])
            return f"{_dotted(node.path)}=[] (empty)"
        item = items[0]
        size = max(1, len(encode(item)))
        count = min(self._pick((100, 1000, 5000)), MAX_ARRAY_BYTES // size)
        _set(payload, node.path, [copy.deepcopy(item) for _ in range(count)])
        return f"{_dotted(node.path)}=<{count} items>"

    # ---- frames -------------------------------------------------------------------------

    def call(self, action: str, payload: Any, label: str) -> Frame:
        message_id = self.message_id()
        text = encode([2, message_id, action, payload])
        return Frame(text, f"{action}: {label}", _owed(text, message_id))

    def valid_call(self, action: str | None = None) -> Frame:
        action = action or self._pick(self.actions)
        return self.call(action, self.valid_payload(action)[0], "valid")

    def mutated_call(self, action: str | None = None) -> Frame:
        action = action or self._pick(self.actions)
        payload, label = self.mutated_payload(action)
        return self.call(action, payload, label)

    def malformed(self) -> Frame:
        maker = self._pick(MALFORMED)
        frame: Frame = maker(self)
        return frame

    def transaction_sequence(self) -> list[Frame]:
        """Started / Updated / Ended of one transaction, with extreme seqNos and offline flags
        (finding 1: a gap of 2**63 between seqNos)."""
        tx_id = f"FZSEQ{self.message_id()}"
        evse = self._pick((1, 1, 2, 2**31, 2**63 - 1, 1e19))
        frames = []
        for event_type in ("Started", "Updated", "Ended"):
            if event_type == "Updated" and self.rng.random() < 0.5:
                continue
            seq_no = self._pick((0, 1, 2, 10**7, 2**31, 2**63 - 1, 2**63, 1e19))
            payload: dict[str, Any] = {
                "eventType": event_type,
                "timestamp": self._pick(DATE_TIMES),
                "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic"}.get(
                    event_type, "StopAuthorized"
                ),
                "seqNo": seq_no,
                "transactionInfo": {"transactionId": tx_id},
                "evse": {"id": evse, "connectorId": 1},
            }
            if self.rng.random() < 0.7:
                payload["offline"] = True
            if event_type == "Ended":
                payload["transactionInfo"]["stoppedReason"] = "Local"
            if self.rng.random() < 0.4:
                payload["meterValue"] = [
                    {
                        "timestamp": DATE_TIMES[0],
                        "sampledValue": [{"value": self._pick((1.0, 1e30, -1e30, 1e308))}],
                    }
                ]
            label = f"seqNo={_show(seq_no)} evse={_show(evse)} offline={'offline' in payload}"
            frames.append(self.call("TransactionEvent", payload, f"{event_type} {label}"))
        return frames

    def report_sequence(self) -> list[Frame]:
        """NotifyReport parts with tbc true, then the last part (finding 2)."""
        request_id = self._pick((1, 2, 2**31 - 1, 2**63 - 1, 2**63, 1e19))
        frames = []
        parts = self.rng.randint(0, 3)
        for index in range(parts + 1):
            last = index == parts
            seq_no = self._pick((0, 1, 5, 10**7, 2**31, 2**63 - 1, 2**63, 1e19))
            payload: dict[str, Any] = {
                "requestId": request_id,
                "generatedAt": DATE_TIMES[0],
                "seqNo": seq_no,
                "tbc": not last,
            }
            label = f"requestId={_show(request_id)} seqNo={_show(seq_no)} tbc={not last}"
            frames.append(self.call("NotifyReport", payload, label))
        return frames

    def scenario(self) -> list[Frame]:
        """One attack step: a single frame or a short sequence."""
        roll = self.rng.random()
        if roll < 0.25:
            return [self.malformed()]
        if roll < 0.65:
            return [self.mutated_call() for _ in range(self.rng.randint(1, 2))]
        if roll < 0.75:
            return [self.valid_call()]
        if roll < 0.88:
            return self.transaction_sequence()
        return self.report_sequence()

    def frames(self) -> Iterator[Frame]:
        """An endless stream of frames (the benchmark)."""
        while True:
            yield from self.scenario()


def _owed(text: str, message_id: str) -> str:
    """The id an answer owes: "-1" when the frame is JSON a strict parser refuses (1e400,
    nesting deeper than orjson's 1024 levels), so the id in it cannot be read."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return "-1"
    return message_id


def _malformed_not_json(fz: FrameFuzzer) -> Frame:
    text = fz._pick(
        (
            "",
            " ",
            "[",
            "nope",
            "[2,",
            '[2,"x","Heartbeat",{}]trailing',
            '[2,"x","Heartbeat",{"a":NaN}]',
            '[2,"x","Heartbeat",{"a":Infinity}]',
            '[2,"x","Heartbeat",{"a":1e400}]',
            '[2,"x","Heartbeat",{"a":"\\ud800"}]',
            "[2,'x','Heartbeat',{}]",
            '\ufeff[2,"x","Heartbeat",{}]',
            '[2,"x","Heartbeat",{}' + "]" * 3,
            " " * 100_000 + "[",
        )
    )
    return Frame(text, f"not JSON: {text[:40]!r}", "-1")


def _malformed_shape(fz: FrameFuzzer) -> Frame:
    shape = fz._pick(
        (
            [],
            [2],
            [2, "x"],
            {"a": 1},
            2,
            "text",
            None,
            [[2, "x", "Heartbeat", {}]],
        )
    )
    text = encode(shape)
    return Frame(text, f"not an OCPP-J array: {text[:40]}", "-1")


def _malformed_message_id(fz: FrameFuzzer) -> Frame:
    message_id = fz._pick(
        (1, None, "", "x" * 37, "x" * 100_000, ["a"], {"a": 1}, 2**64, 1e30, True)
    )
    text = encode([2, message_id, "Heartbeat", {}])
    return Frame(text, f"messageId {_show(message_id)}", "-1")


def _malformed_odd_message_id(fz: FrameFuzzer) -> Frame:
    # Legal (1-36 chars) but odd ids: the answer must echo them.
    message_id = fz._pick(("\u0000", "-1", " ", "\U0001f50c" * 9, "'\"\\", "0" * 36))
    text = encode([2, message_id, "Heartbeat", {}])
    return Frame(text, f"messageId {message_id!r}", message_id)


def _malformed_action(fz: FrameFuzzer) -> Frame:
    action = fz._pick(
        (1, None, "", "UnknownAction", "x" * 10_000, "Reset", "heartbeat", "Heartbeat ", [], {})
    )
    message_id = fz.message_id()
    text = encode([2, message_id, action, {}])
    return Frame(text, f"action {_show(action)}", message_id)


def _malformed_payload(fz: FrameFuzzer) -> Frame:
    payload = fz._pick(([], "text", None, 1, 1.5, True, [{}]))
    message_id = fz.message_id()
    action = fz._pick(fz.actions)
    text = encode([2, message_id, action, payload])
    return Frame(text, f"{action} payload {_show(payload)}", message_id)


def _malformed_arity(fz: FrameFuzzer) -> Frame:
    message_id = fz.message_id()
    frame = fz._pick(
        (
            [2, message_id, "Heartbeat", {}, "extra"],
            [2, message_id, "Heartbeat"],
            [3, message_id],
            [4, message_id, "GenericError"],
            [4, message_id, "GenericError", "", {}, "extra"],
        )
    )
    text = encode(frame)
    # A malformed CALL is owed a ProtocolError; a malformed answer from the station, nothing.
    return Frame(text, f"wrong arity: {text[:40]}", message_id if frame[0] == 2 else None)


def _malformed_message_type(fz: FrameFuzzer) -> Frame:
    kind = fz._pick((0, 1, 5, 6, 99, -1, 2**64, 1e30, "2", None, True, [2]))
    message_id = fz.message_id()
    text = encode([kind, message_id, "Heartbeat", {}])
    # MessageTypeNotSupported with this id, or an RpcFrameworkError as "-1": either will do.
    return Frame(text, f"message type {_show(kind)}", "-1")


def _unsolicited(fz: FrameFuzzer) -> Frame:
    message_id = fz._pick(("unknown", "fz0", "-1"))
    frame = fz._pick(
        (
            [3, message_id, {}],
            [3, message_id, deep(500)],
            [4, message_id, "GenericError", "", {}],
            [4, message_id, "x" * 10_000, None, deep(500)],
        )
    )
    text = encode(frame)
    return Frame(text, f"unsolicited answer: {text[:40]}", None)


def _binary(fz: FrameFuzzer) -> Frame:
    message_id = fz.message_id()
    data = fz._pick(
        (
            encode([2, message_id, "Heartbeat", {}]).encode(),
            b"\xff\xfe\x00\x01",
            bytes(range(256)),
        )
    )
    return Frame(data, f"binary frame {data[:20]!r}", None)


def _deep_frame(fz: FrameFuzzer) -> Frame:
    depth = fz._pick(NESTING_DEPTHS)
    message_id = fz.message_id()
    text = encode([2, message_id, "DataTransfer", {"vendorId": "fz", "data": deep(depth)}])
    return Frame(text, f"DataTransfer data nested {depth}", _owed(text, message_id))


MALFORMED: tuple[Callable[[FrameFuzzer], Frame], ...] = (
    _malformed_not_json,
    _malformed_shape,
    _malformed_message_id,
    _malformed_odd_message_id,
    _malformed_action,
    _malformed_payload,
    _malformed_arity,
    _malformed_message_type,
    _unsolicited,
    _binary,
    _deep_frame,
)

MUTATIONS: tuple[Callable[[FrameFuzzer, dict[str, Any], list[Node]], str], ...] = (
    FrameFuzzer._extreme_number,
    FrameFuzzer._extreme_number,
    FrameFuzzer._extreme_number,
    FrameFuzzer._extreme_string,
    FrameFuzzer._deep_nesting,
    FrameFuzzer._drop_required,
    FrameFuzzer._extra_field,
    FrameFuzzer._wrong_type,
    FrameFuzzer._wrong_enum,
    FrameFuzzer._huge_array,
)


# ---- paths ----------------------------------------------------------------------------------


def _resolves(payload: Any, path: JsonPath) -> bool:
    """Whether `path` still leads somewhere (an earlier mutation may have replaced a parent)."""
    try:
        _get(payload, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _get(payload: Any, path: JsonPath) -> Any:
    for key in path:
        payload = payload[key]
    return payload


def _set(payload: dict[str, Any], path: JsonPath, value: Any) -> None:
    try:
        parent = _get(payload, path[:-1])
        parent[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        return  # an earlier mutation removed or replaced the parent


def _delete(payload: dict[str, Any], path: JsonPath) -> None:
    try:
        parent = _get(payload, path[:-1])
        del parent[path[-1]]
    except (KeyError, IndexError, TypeError):
        return


def _dotted(path: JsonPath) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _show(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text[:20] + ("..." if len(value.text) > 20 else "")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**31:
        sign = "-" if value < 0 else ""
        for power in (abs(value).bit_length() - 1, abs(value).bit_length()):
            rest = abs(value) - 2**power
            if abs(rest) <= 1000:
                rest = -rest if value < 0 else rest
                return f"{sign}2**{power}" + (f"{rest:+d}" if rest else "")
    return repr(value)[:40]


# ---- Hypothesis strategies ------------------------------------------------------------------


def _fuzzer(rng: random.Random) -> FrameFuzzer:
    return FrameFuzzer(rng)


_randoms = st.randoms(use_true_random=False, note_method_calls=False)
fuzzers = _randoms.map(_fuzzer)


def scenarios(version: OcppVersion = OcppVersion.V201) -> st.SearchStrategy[list[Frame]]:
    """One attack step per example: a malformed frame, mutated CALLs or a sequence."""
    return _randoms.map(lambda rng: FrameFuzzer(rng, version=version).scenario())


def malformed_frames() -> st.SearchStrategy[Frame]:
    return fuzzers.map(FrameFuzzer.malformed)


def mutated_calls(action: str | None = None) -> st.SearchStrategy[Frame]:
    return fuzzers.map(lambda fz: fz.mutated_call(action))


def transaction_sequences() -> st.SearchStrategy[list[Frame]]:
    return fuzzers.map(FrameFuzzer.transaction_sequence)


def report_sequences() -> st.SearchStrategy[list[Frame]]:
    return fuzzers.map(FrameFuzzer.report_sequence)


# ---- the attacker and the bystander (real websockets, loopback) ------------------------------

REPLY_TIMEOUT_S = 10.0  # liveness, not speed: a frozen event loop never answers
# Close codes a CSMS may use to refuse a frame or a burst (RFC 6455 7.4.1); 1011 (internal
# error) and a dropped TCP connection without a close frame (1006) are failures.
ACCEPTABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1013})
BOOT = {
    "chargingStation": {"vendorName": "FuzzCo", "model": "Fuzz-1"},
    "reason": "PowerUp",
}


def basic_auth(station_id: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def answer_problem(reply: Any, codes: frozenset[str] = OCPP_ERROR_CODES) -> str | None:
    """Why a frame received from the CSMS is not an acceptable answer (None: it is); `codes`
    are the CALLERROR codes of the connection's OCPP-J version."""
    if not isinstance(reply, list) or len(reply) < 3 or reply[0] not in (2, 3, 4):
        return f"not an OCPP-J frame: {str(reply)[:200]}"
    if reply[0] == 3 and not isinstance(reply[2], dict):
        return f"CALLRESULT payload is not an object: {str(reply)[:200]}"
    if reply[0] == 4:
        if len(reply) != 5:
            return f"CALLERROR with {len(reply)} elements: {str(reply)[:200]}"
        code, description = reply[2], reply[3]
        if code not in codes:
            return f"CALLERROR code {code!r} is not an OCPP-J code of this version"
        if code == "InternalError":
            return f"InternalError ({description!r}): input must never cause one"
        if code == "GenericError" and not str(description).strip():
            return "GenericError without a description"
    return None


def answer_code(reply: list[Any]) -> str:
    return "CALLRESULT" if reply[0] == 3 else str(reply[2])


async def connect(
    url: str, station_id: str, password: str, subprotocol: str = "ocpp2.0.1"
) -> ClientConnection:
    connection = await websockets.connect(
        f"{url}/{station_id}",
        subprotocols=[subprotocol],  # type: ignore[list-item]
        additional_headers=basic_auth(station_id, password),
        open_timeout=REPLY_TIMEOUT_S,
        max_size=None,
        ping_interval=None,
    )
    if connection.subprotocol != subprotocol:
        await connection.close()
        raise AssertionError(f"asked for {subprotocol}, got {connection.subprotocol}")
    return connection


class Attacker:
    """Sends frames as one (valid, Accepted) station and checks every answer.

    After a frame (or a burst of frames) it sends a Heartbeat probe and reads until the probe
    is answered: a session answers in order, so every CALL with a readable message id must be
    answered before the probe, and a frame that freezes the CSMS is caught at that frame
    (nothing received for REPLY_TIMEOUT_S). Disconnected by the CSMS with a policy close code
    (frame too big, rate limit), it reconnects, boots again and carries on.
    """

    def __init__(
        self,
        url: str,
        station_id: str,
        password: str,
        *,
        boot_status: str = "Accepted",
        subprotocol: str = "ocpp2.0.1",
    ) -> None:
        self.url, self.station_id, self.password = url, station_id, password
        self.subprotocol = subprotocol
        self.boot_status = boot_status  # what the CSMS answers its BootNotification
        self.ws: ClientConnection | None = None
        self.codes: Counter[str] = Counter()
        self.frames_sent = 0
        self.reconnects = 0
        self.last_reply: list[Any] | None = None  # the answer the last frame was owed
        self._probes = 0

    async def open(self) -> None:
        deadline = asyncio.get_running_loop().time() + 30.0
        delay = 0.1
        while True:
            try:
                self.ws = await connect(self.url, self.station_id, self.password, self.subprotocol)
                break
            except (OSError, InvalidHandshake, TimeoutError):
                # A throttled or rate-limited reconnect: back off, within a bound.
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        await self.ws.send(encode([2, "boot", "BootNotification", BOOT]))
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            while True:
                reply = orjson.loads(await self.ws.recv())
                if reply[1] == "boot":
                    break
        if reply[0] != 3 or reply[2].get("status") != self.boot_status:
            raise AssertionError(f"attacker boot not {self.boot_status}: {reply}")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def play(self, frames: list[Frame]) -> list[str]:
        """Send `frames` one at a time; the problems found (empty: the CSMS behaved)."""
        problems: list[str] = []
        for frame in frames:
            problems += await self.burst([frame])
        return problems

    async def send(self, frame: Frame) -> str | None:
        problems = await self.burst([frame])
        return "; ".join(problems) or None

    async def burst(self, frames: list[Frame]) -> list[str]:
        """Send `frames` back to back, then the probe; check every answer until the probe's."""
        if self.ws is None:
            await self.open()
            self.reconnects += 1
        assert self.ws is not None
        self.frames_sent += len(frames)
        self.last_reply = None
        self._probes += 1
        probe = f"probe{self._probes}"
        owed: dict[str, Frame] = {
            f.reply_id: f for f in frames if f.reply_id is not None and f.reply_id != "-1"
        }
        last_id = frames[-1].reply_id if frames else None
        problems: list[str] = []
        try:
            for frame in frames:
                await self.ws.send(frame.data)
            await self.ws.send(encode([2, probe, "Heartbeat", {}]))
            while True:
                async with asyncio.timeout(REPLY_TIMEOUT_S):
                    raw = await self.ws.recv()
                try:
                    reply = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    problems.append(f"CSMS sent invalid JSON: {str(raw)[:200]}")
                    continue
                if isinstance(reply, list) and len(reply) == 4 and reply[0] == 2:
                    # A CSMS command (e.g. GetTransactionStatus): refuse it.
                    await self.ws.send(encode([4, reply[1], "NotSupported", "fuzzer", {}]))
                    continue
                message_id = reply[1] if isinstance(reply, list) and len(reply) > 1 else None
                answered = owed.pop(message_id, None) if isinstance(message_id, str) else None
                problem = answer_problem(reply, ERROR_CODES_BY_SUBPROTOCOL[self.subprotocol])
                if message_id == probe:
                    if problem:
                        problems.append(f"{problem} [answer to the Heartbeat probe]")
                    break
                label = answered.label if answered is not None else "an unreadable frame"
                if problem:
                    problems.append(f"{problem} [answer to {label}]")
                    continue
                self.codes[answer_code(reply)] += 1
                if message_id == last_id or (last_id == "-1" and answered is None):
                    self.last_reply = reply
        except ConnectionClosed as closed:
            self.ws = None
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            self.codes[f"closed {code}"] += 1
            if code not in ACCEPTABLE_CLOSE_CODES:
                problems.append(f"CSMS closed the connection with {code} after {_last(frames)}")
            return problems
        except TimeoutError:
            self.codes["no answer"] += 1
            await self.close()
            waiting = next(iter(owed.values())).label if owed else f"probe after {_last(frames)}"
            problems.append(f"no answer within {REPLY_TIMEOUT_S:.0f} s to {waiting}")
            return problems
        problems += [f"{f.label} was not answered (the probe after it was)" for f in owed.values()]
        return problems


def _last(frames: list[Frame]) -> str:
    return frames[-1].label if frames else "nothing"


class Bystander:
    """A well-behaved station that keeps sending Heartbeat / StatusNotification and records
    how long each answer took; any answer later than `bound_s`, or an error, is a problem."""

    def __init__(
        self,
        url: str,
        station_id: str,
        password: str,
        *,
        interval_s: float = 0.05,
        subprotocol: str = "ocpp2.0.1",
    ) -> None:
        self.url, self.station_id, self.password = url, station_id, password
        self.subprotocol = subprotocol
        self.interval_s = interval_s
        self.bound_s = 5.0
        self.latencies_s: list[float] = []
        self.problems: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ws = await connect(self.url, self.station_id, self.password, self.subprotocol)
        await ws.send(encode([2, "boot", "BootNotification", BOOT]))
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            reply = orjson.loads(await ws.recv())
        if reply[0] != 3 or reply[2].get("status") != "Accepted":
            raise AssertionError(f"bystander boot not accepted: {reply}")
        self._task = asyncio.create_task(self._run(ws))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        count = 0
        try:
            while not self._stop.is_set():
                count += 1
                message_id = f"b{count}"
                if count % 2:
                    frame = [2, message_id, "Heartbeat", {}]
                else:
                    status = {
                        "timestamp": DATE_TIMES[0],
                        "connectorStatus": "Available" if count % 4 else "Occupied",
                        "evseId": 1,
                        "connectorId": 1,
                    }
                    frame = [2, message_id, "StatusNotification", status]
                started = loop.time()
                await ws.send(encode(frame))
                try:
                    async with asyncio.timeout(self.bound_s):
                        while True:
                            reply = orjson.loads(await ws.recv())
                            if reply[0] == 2:
                                await ws.send(encode([4, reply[1], "NotSupported", "", {}]))
                            elif reply[1] == message_id:
                                break
                except TimeoutError:
                    self.problems.append(f"bystander {frame[2]} not answered in {self.bound_s} s")
                    continue
                self.latencies_s.append(loop.time() - started)
                if reply[0] != 3:
                    self.problems.append(f"bystander {frame[2]} answered {reply}")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval_s):
                        await self._stop.wait()
        except ConnectionClosed as closed:
            self.problems.append(f"bystander disconnected: {closed}")
        finally:
            await ws.close()


def rss_bytes(pid: int | str = "self") -> tuple[int, int]:
    """(current, peak) resident set size of a process, from /proc (Linux); (0, 0) elsewhere."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    values = {}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
