"""CsipSiteClient's FunctionSetAssignments stage: a DERProgram list that appears (or changes)
has its controls read on the next walk, not at the DERProgram rate the old lists gave (a
program the DNSP adds after registration, CACTUS GEN-01/LOA-01).
And the ramp rate DERSettings report (CACTUS ALL-13)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from csms.domain.csip_controls import CsipDefaultControl, DerLimits
from csms.integrations.csip.client import CsipSiteClient, PollBounds, _default_set_grad_w, _Memory
from csms.integrations.csip.convert import SiteRatings, der_settings
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
    memory = _Memory()
    await csip._programs_lists(state, T0)
    await csip._controls(state, memory, T0)
    assert state.poll_rates["derp"] == 60  # no lists yet: looked at again at the FSA rate
    later = T0 + dt.timedelta(seconds=30)
    assert not csip._is_due(state, "derp", later)

    transport.program_lists = ["/edev/1/fsa/1/derp"]
    await csip._programs_lists(state, later)
    assert csip._is_due(state, "derp", later)
    await csip._controls(state, memory, later)
    assert transport.got[-1] == "/edev/1/fsa/1/derp"
    assert state.poll_rates["derp"] == 60


async def test_unchanged_program_lists_keep_their_rate() -> None:
    transport = FakeTransport()
    transport.program_lists = ["/edev/1/fsa/1/derp"]
    csip = client(transport)
    state = CsipSiteState("home-1", hrefs={"fsa_list": "/edev/1/fsa"})
    memory = _Memory()
    await csip._programs_lists(state, T0)
    await csip._controls(state, memory, T0)
    later = T0 + dt.timedelta(seconds=30)
    await csip._programs_lists(state, later)
    assert not csip._is_due(state, "derp", later)  # next read at T0 + 60 s, the server's rate


def _default(primacy: int, ramp_pct_per_s: float | None) -> CsipDefaultControl:
    return CsipDefaultControl(
        mrid=f"D{primacy}",
        href=f"/derp/{primacy}/dderc",
        program_href=f"/derp/{primacy}",
        primacy=primacy,
        limits=DerLimits(export_limit_w=0, ramp_rate_pct_per_s=ramp_pct_per_s),
    )


def test_all_13_der_settings_report_the_default_ramp_rate() -> None:
    """DERSettings.setGradW is the ramp the site follows: the DefaultDERControl setGradW of
    the program with the lowest primacy (hundredths of a percent per second), else 0."""
    assert _default_set_grad_w([]) == 0
    assert _default_set_grad_w([_default(3, None)]) == 0
    assert _default_set_grad_w([_default(5, 0.27), _default(1, 1.0)]) == 100
    assert _default_set_grad_w([_default(5, 0.27), _default(9, 1.0)]) == 27
    ratings = SiteRatings(max_charge_w=7200, max_discharge_w=7200)
    assert der_settings(ratings, T0, 27).setGradW == 27
    assert der_settings(ratings, T0, 10**9).setGradW == 10_000  # bounded: 100 %/s
