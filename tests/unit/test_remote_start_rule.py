"""rules.remote_start_covers: which sent RequestStartTransaction payloads vouch for an idToken."""

from __future__ import annotations

import pytest

from csms.domain.rules import remote_start_covers


def _sent(token: str, type_: str = "Central", remote_start_id: int = 1) -> dict[str, object]:
    return {"idToken": {"idToken": token, "type": type_}, "remoteStartId": remote_start_id}


@pytest.mark.parametrize(
    ("sent", "token", "type_", "remote_start_id", "covered"),
    [
        ([_sent("A")], "A", "Central", None, True),  # Authorize: no remoteStartId to compare
        ([_sent("A", remote_start_id=7)], "A", "Central", 7, True),
        ([_sent("A", remote_start_id=7)], "A", "Central", 8, False),
        ([_sent("A")], "B", "Central", None, False),
        ([_sent("A")], "A", "ISO14443", None, False),
        ([_sent("B"), _sent("A", remote_start_id=3)], "A", "Central", 3, True),  # not the newest
        ([], "A", "Central", None, False),
        ([None, "junk", {"idToken": None}], "A", "Central", None, False),  # odd log rows
    ],
)
def test_f01_remote_start_covers(
    sent: list[object], token: str, type_: str, remote_start_id: int | None, covered: bool
) -> None:
    assert remote_start_covers(sent, token, type_, remote_start_id) is covered
