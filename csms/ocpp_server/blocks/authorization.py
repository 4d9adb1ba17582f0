"""Block C (authorization): Authorize against the CSMS's idToken store, and the contract
certificate of Plug & Charge (C07) when the station sends one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.domain.iso15118 import contract_verdict
from csms.domain.models import AuthorizationResult
from csms.ocpp_server.blocks._common import record_event
from csms.services.common import ocpp_datetime

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session


def id_token_info(result: AuthorizationResult) -> dict[str, Any]:
    info: dict[str, Any] = {"status": result.status.value}
    if result.expires_at is not None:
        info["cacheExpiryDateTime"] = ocpp_datetime(result.expires_at)
    if result.group_id_token is not None:
        info["groupIdToken"] = {"idToken": result.group_id_token, "type": "Central"}
    return info


async def authorize(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    token = payload["idToken"]
    result = await session.services.id_tokens.authorize(
        token["idToken"], token["type"], station_id=session.station_id
    )
    info = id_token_info(result)
    answer: dict[str, Any] = {"idTokenInfo": info}
    hash_data = payload.get("iso15118CertificateHashData")
    certificate = payload.get("certificate")
    if hash_data or certificate:
        # C07 (Plug & Charge): the contract chain is checked (OCSP; the PEM chain against
        # the trust anchors) and decides with the token (C07.FR.05/.06, C07.FR.16).
        chain = await session.services.pnc.contract_status(hash_data, certificate)
        info["status"], answer["certificateStatus"] = contract_verdict(info["status"], chain)
    # Kept as an event (audit trail of who tried to charge, and the answer given).
    await record_event(session, "Authorize", {**payload, **answer}, skip_if_refused=True)
    return answer


HANDLERS: dict[str, Handler] = {"Authorize": authorize}
