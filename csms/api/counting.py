"""Counts and times the commands the API sends, by action and outcome, for /metrics."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from csms.api.deps import ApiServices, CommandSender
from csms.domain.errors import CsmsError
from csms.services.ocpp21_data import Ocpp21DataService
from csms.services.records import (
    ChargingProfileService,
    DeviceModelService,
    EventService,
    MessageLogService,
    TariffService,
    TransactionService,
)
from csms.services.stations import StationService
from csms.services.tokens import ApiTokenService, IdTokenService


class CountingCommands:
    """A CommandSender that counts (action, outcome); outcome is "ok" or the error's class."""

    def __init__(
        self,
        inner: Callable[[], CommandSender],
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self._inner = inner  # looked up per call: the container is read only when used
        self.counts: Counter[tuple[str, str]] = Counter()
        self._observe = observe  # (action, outcome, seconds): the latency histogram

    async def send(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float | None = None,  # noqa: ASYNC109 -- passed through
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            answer = await self._inner().send(station_id, action, payload, timeout)
        except CsmsError as error:
            self._count(action, type(error).__name__, started)
            raise
        self._count(action, "ok", started)
        return answer

    def _count(self, action: str, outcome: str, started: float) -> None:
        self.counts[(action, outcome)] += 1
        if self._observe is not None:
            self._observe(action, outcome, time.perf_counter() - started)


class CountedServices:
    """The services, with `commands` counted; everything else is the container's own."""

    def __init__(
        self, services: ApiServices, observe: Callable[[str, str, float], None] | None = None
    ) -> None:
        self._services = services
        self._commands = CountingCommands(lambda: services.commands, observe)

    @property
    def command_counts(self) -> Counter[tuple[str, str]]:
        return self._commands.counts

    @property
    def commands(self) -> CountingCommands:
        return self._commands

    @property
    def stations(self) -> StationService:
        return self._services.stations

    @property
    def ocpp21(self) -> Ocpp21DataService:
        return self._services.ocpp21

    @property
    def transactions(self) -> TransactionService:
        return self._services.transactions

    @property
    def device_model(self) -> DeviceModelService:
        return self._services.device_model

    @property
    def charging_profiles(self) -> ChargingProfileService:
        return self._services.charging_profiles

    @property
    def message_log(self) -> MessageLogService:
        return self._services.message_log

    @property
    def events(self) -> EventService:
        return self._services.events

    @property
    def tariffs(self) -> TariffService:
        return self._services.tariffs

    @property
    def id_tokens(self) -> IdTokenService:
        return self._services.id_tokens

    @property
    def api_tokens(self) -> ApiTokenService:
        return self._services.api_tokens
