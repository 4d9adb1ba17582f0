"""The routing wire format (csms/routing/wire.py) is what nodes of different versions exchange:
these bytes must not change."""

from __future__ import annotations

import orjson
import pytest

from csms.domain.errors import CommandNotAllowed, CommandTimeout, StationOffline
from csms.routing.wire import (
    Claimed,
    Holder,
    Notice,
    broker_token,
    claim_notice,
    decode_answer,
    decode_notice,
    decode_request,
    encode_error,
    encode_notice,
    encode_request,
    encode_result,
    node_notice,
    release_notice,
)


def test_notices_are_the_json_objects_nodes_exchange() -> None:
    assert encode_notice(claim_notice("CP 1", "n1", "inc1", 7)) == orjson.dumps(
        {"event": "claim", "station": "CP 1", "node": "n1", "inc": "inc1", "revision": 7}
    )
    assert encode_notice(release_notice("CP 1", "n1", 7)) == orjson.dumps(
        {"event": "release", "station": "CP 1", "node": "n1", "revision": 7}
    )
    for event in ("node-up", "node-down"):
        assert encode_notice(node_notice(event, "n1", "inc1")) == orjson.dumps(
            {"event": event, "node": "n1", "inc": "inc1"}
        )


@pytest.mark.parametrize(
    "notice",
    [
        claim_notice("s", "n", "i", 3),
        release_notice("s", "n", 3),
        node_notice("node-up", "n", "i"),
        node_notice("node-down", "n", "i"),
    ],
)
def test_notice_round_trip(notice: Notice) -> None:
    assert decode_notice(encode_notice(notice)) == notice


def test_notice_without_event_or_incarnation_is_a_claim() -> None:
    data = orjson.dumps({"station": "s", "node": "n", "revision": 4})
    assert decode_notice(data) == Notice("claim", "n", "s", 4, None)


def test_malformed_notice_raises() -> None:
    with pytest.raises(KeyError):
        decode_notice(orjson.dumps({"event": "release", "node": "n", "station": "s"}))


def test_request_and_answers_round_trip() -> None:
    request = encode_request("s", "Reset", {"type": "Immediate"}, 5.0)
    assert orjson.loads(request) == {
        "station": "s",
        "action": "Reset",
        "payload": {"type": "Immediate"},
        "timeout": 5.0,
    }
    assert decode_request(request) == ("s", "Reset", {"type": "Immediate"}, 5.0)
    assert decode_answer(encode_result({"status": "Accepted"})) == {"status": "Accepted"}
    with pytest.raises(CommandTimeout):
        decode_answer(encode_error(CommandTimeout("s", "Reset", 5.0)))
    with pytest.raises(CommandNotAllowed):
        decode_answer(encode_error(CommandNotAllowed("s", "Reset", "Faulted")))
    with pytest.raises(StationOffline):
        decode_answer(encode_error(StationOffline("s")))


def test_presence_record_and_tokens() -> None:
    holder = Holder("node:1", "abc")
    assert holder.encode() == "abc node:1"
    assert Holder.decode("abc node:1") == holder
    assert Holder.decode("abc") is None
    assert Claimed(holder, 2).revision == 2
    assert broker_token("CP_1-a") == "CP_1-a"
    assert broker_token("CP.1") == "x." + b"CP.1".hex()
