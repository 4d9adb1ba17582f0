"""Block K, ISO 15118 (K15-K17): the EV's charging needs answered with a schedule, and the
EV's own schedule checked against the limits the CSMS sent. Same message shapes on OCPP 2.0.1
and 2.1 (2.1 adds V2X parameters, read by csms/domain/iso15118.py).

NotifyEVChargingNeeds: Rejected when no transaction runs on the EVSE (no TxProfile can be
sent); otherwise the plan starts at once. Ready within `v2g_ev_needs_answer_budget_s`: Accepted
(K15.FR.03); not yet: Processing (K15.FR.05). Either way its SetChargingProfile is sent once the
answer is on the wire (K16.FR.12), never from inside the handler (the station could not answer
it while its own CALL waits).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from csms.domain.errors import CsmsError
from csms.ocpp_server.blocks._common import record_event
from csms.services.common import parse_ocpp_datetime
from csms.services.v2g import v2g_service_for
from csms.services.v2g.charging_needs import NeedsPlan, NoTransaction

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session

log = logging.getLogger(__name__)


def _status(status: str, reason: str | None = None, info: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": status}
    if reason is not None:
        status_info: dict[str, Any] = {"reasonCode": reason}
        if info:
            status_info["additionalInfo"] = info[:500]
        answer["statusInfo"] = status_info
    return answer


async def notify_ev_charging_needs(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    if payload["evseId"] <= 0:
        return _status("Rejected", "InvalidEvseId")
    received = time.perf_counter()
    await record_event(session, "NotifyEVChargingNeeds", payload)
    v2g = v2g_service_for(session.services)
    if await v2g.transaction_on_evse(session.station_id, payload["evseId"]) is None:
        return _status("Rejected", "NoTransaction", "no transaction runs on this EVSE")
    planning = asyncio.ensure_future(v2g.plan_for_needs(session.station_id, payload))
    done, _ = await asyncio.wait({planning}, timeout=v2g.settings.ev_needs_answer_budget_s)
    if done:
        error = planning.exception()
        if isinstance(error, NoTransaction):  # ended meanwhile
            return _status("Rejected", "NoTransaction", str(error))
        if error is not None:
            raise error
    session.after_reply(lambda: _send_plan(session, planning, received))
    return _status("Accepted" if done else "Processing")


async def _send_plan(
    session: Session, planning: asyncio.Future[NeedsPlan], received: float
) -> None:
    try:
        plan = await planning
    except NoTransaction as exc:
        log.info("%s: needs not planned: %s", session.station_id, exc)
        return
    v2g = v2g_service_for(session.services)
    try:
        status = await v2g.send_needs_plan(plan)
    except CsmsError as exc:
        # After an Accepted the EV waits for this profile: worth a warning.
        log.warning("%s: SetChargingProfile for the EV's needs failed: %s", session.station_id, exc)
        return
    log.info(
        "%s EVSE %d: NotifyEVChargingNeeds -> SetChargingProfile %s in %.3f s (%s)",
        session.station_id,
        plan.evse_id,
        status,
        time.perf_counter() - received,
        plan.method,
    )


async def notify_ev_charging_schedule(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """K15.FR.11/12, K16.FR.07, K17.FR.12: Accepted within the limits the CSMS sent, else
    Rejected, and the CSMS renegotiates (K15.FR.13): a new SetChargingProfile after the
    answer."""
    if payload["evseId"] <= 0:
        return _status("Rejected", "InvalidEvseId")
    await record_event(session, "NotifyEVChargingSchedule", payload, "timeBase")
    v2g = v2g_service_for(session.services)
    time_base = parse_ocpp_datetime(payload["timeBase"])
    verdict = await v2g.check_ev_schedule(session.station_id, payload, time_base)
    if verdict.within:
        return _status("Accepted")
    evse_id = int(payload["evseId"])

    async def renegotiate() -> None:
        try:
            status = await v2g.renegotiate(session.station_id, evse_id)
        except (CsmsError, NoTransaction) as exc:
            log.info("%s: renegotiation failed: %s", session.station_id, exc)
            return
        log.info("%s EVSE %d: renegotiation sent: %s", session.station_id, evse_id, status)

    session.after_reply(renegotiate)
    return _status("Rejected", "OutOfLimits", verdict.reason)


HANDLERS: dict[str, Handler] = {
    "NotifyEVChargingNeeds": notify_ev_charging_needs,
    "NotifyEVChargingSchedule": notify_ev_charging_schedule,
}
