"""Block C/D: local authorization list and auth cache."""

from __future__ import annotations

from typing import Any, Protocol

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint_firmware.ocpp_edge.handler_base import HandlerBase, status_info


class AuthorizationPort(Protocol):
    def send_local_list(
        self, version_number: int, update_type: str, entries: list[dict[str, Any]]
    ) -> tuple[str, str | None]: ...

    def local_list_version(self) -> int: ...

    def clear_cache(self) -> bool: ...


class AuthorizationHandlers(HandlerBase):
    authorization: AuthorizationPort

    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        version_number: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> call_result.SendLocalList:
        status, reason = self.authorization.send_local_list(
            version_number, update_type, local_authorization_list or []
        )
        return call_result.SendLocalList(
            status=status, status_info=None if reason is None else status_info(reason)
        )

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(
            version_number=self.authorization.local_list_version()
        )

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        # C11.FR.03 / C11.FR.04: Accepted when cleared, Rejected when the cache is disabled.
        cleared = self.authorization.clear_cache()
        return call_result.ClearCache(status="Accepted" if cleared else "Rejected")
