"""CsipSiteClient's FunctionSetAssignments stage: a DERProgram list that appears (or changes)
has its controls read on the next walk, not at the DERProgram rate the old lists gave (900 s
when there were none: a program the DNSP adds after registration, CACTUS GEN-01/LOA-01)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from csms.integrations.csip.client import CsipSiteClient, PollBounds
from csms.persistence.repositories.csip import CsipSiteState

T0 = dt.datetime(2026, 12, 6, 22, 0, tzinfo=dt.UTC)


class FakeTransport:
    """The FSA list and the DERProgram lists as plain objects (only what the stages read)."""

    def __init__(self) -> None:
        self.program_lists: list[str] = []
        self.got: list[str] = []

    async def get_list(
        self, href: str, model: type, items: str, *, max_items: int | None = None
    ) -> tuple[Any, list[Any]]:
        self.got.append(href)
        if href == "/edev/1/fsa":
            links = [
                SimpleNamespace(DERProgramListLink=SimpleNamespace(href=h))
                for h in self.program_lists
            ]
            return SimpleNamespace(pollRate=60), links
        return SimpleNamespace(pollRate=60), []  # a program list with no programs yet


def client(transport: FakeTransport) -> CsipSiteClient:
    return CsipSiteClient(
        transport,  # type: ignore[arg-type]
        db=None,  # type: ignore[arg-type]
        source=None,  # type: ignore[arg-type]
        clock=lambda: T0,
        bounds=PollBounds(min_s=1, max_s=3600, retry_s=1),
    )


async def test_a_new_program_list_is_read_at_once() -> None:
    transport = FakeTransport()
    csip = client(transport)
    state = CsipSiteState("home-1", hrefs={"fsa_list": "/edev/1/fsa"})
    memory = SimpleNamespace()
    await csip._programs_lists(state, T0)
    await csip._controls(state, memory, T0)  # type: ignore[arg-type]
    assert state.poll_rates["derp"] == 900  # no lists: nothing gave a rate
    later = T0 + dt.timedelta(seconds=60)
    assert not csip._is_due(state, "derp", later)

    transport.program_lists = ["/edev/1/fsa/1/derp"]
    await csip._programs_lists(state, later)
    assert csip._is_due(state, "derp", later)
    await csip._controls(state, memory, later)  # type: ignore[arg-type]
    assert transport.got[-1] == "/edev/1/fsa/1/derp"
    assert state.poll_rates["derp"] == 60


async def test_unchanged_program_lists_keep_their_rate() -> None:
    transport = FakeTransport()
    transport.program_lists = ["/edev/1/fsa/1/derp"]
    csip = client(transport)
    state = CsipSiteState("home-1", hrefs={"fsa_list": "/edev/1/fsa"})
    memory = SimpleNamespace()
    await csip._programs_lists(state, T0)
    await csip._controls(state, memory, T0)  # type: ignore[arg-type]
    later = T0 + dt.timedelta(seconds=30)
    await csip._programs_lists(state, later)
    assert not csip._is_due(state, "derp", later)  # next read at T0 + 60 s, the server's rate
