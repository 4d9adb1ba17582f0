"""Block C/D: local authorization list and auth cache."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint_firmware.ocpp_client.blocks.base import BlockBase, status_info


class AuthorizationBlock(BlockBase):
    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        version_number: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> call_result.SendLocalList:
        if not self.agent.config.boolean("LocalAuthListCtrlr", "Enabled"):
            return call_result.SendLocalList(status="Failed", status_info=status_info("NotEnabled"))
        entries = local_authorization_list or []
        storage = self.agent.storage
        if update_type == "Full":
            full = [
                (e["id_token"]["id_token"], e["id_token"]["type"], e["id_token_info"])
                for e in entries
                if e.get("id_token_info") is not None
            ]
            if len(full) > self.agent.config.integer("LocalAuthListCtrlr", "Entries"):
                return call_result.SendLocalList(
                    status="Failed", status_info=status_info("TooManyEntries")
                )
            storage.replace_local_list(version_number, full)
            self.agent.dm.report_entries("LocalAuthListCtrlr", storage.local_list_size())
            return call_result.SendLocalList(status="Accepted")
        # Differential: D01.FR.19 a version not newer than ours is a mismatch.
        if version_number <= storage.local_list_version():
            return call_result.SendLocalList(status="VersionMismatch")
        diff = [
            (e["id_token"]["id_token"], e["id_token"]["type"], e.get("id_token_info"))
            for e in entries
        ]
        storage.update_local_list(version_number, diff)
        self.agent.dm.report_entries("LocalAuthListCtrlr", storage.local_list_size())
        return call_result.SendLocalList(status="Accepted")

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(
            version_number=self.agent.storage.local_list_version()
        )

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        # C11.FR.03 / C11.FR.04: Accepted when cleared, Rejected when the cache is disabled.
        cleared = self.agent.auth_cache.clear()
        return call_result.ClearCache(status="Accepted" if cleared else "Rejected")
