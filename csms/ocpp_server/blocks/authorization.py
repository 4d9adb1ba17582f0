"""Block C (authorization): Authorize against the CSMS's idToken store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    # Kept as an event (audit trail of who tried to charge, and the answer given).
    await record_event(session, "Authorize", {**payload, "idTokenInfo": info}, skip_if_refused=True)
    return {"idTokenInfo": info}


HANDLERS: dict[str, Handler] = {"Authorize": authorize}
