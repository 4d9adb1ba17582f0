"""Running cost pushed to stations with CostUpdated (OCPP 2.0.1 I02).

The TransactionEvent answer already carries `totalCost` for each event; CostUpdated covers the
case where the cost changes between events: the operator changes a station's tariff, or asks for a
fresh figure. The cost is recomputed with the same pure rule (`running_cost`) at `now`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from csms.domain.errors import CsmsError
from csms.domain.models import Tariff, TransactionState
from csms.domain.rules import running_cost
from csms.services.common import CommandSender
from csms.services.records import TariffService, TransactionService

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CostUpdateResult:
    transaction_id: str
    total_cost: float | None
    sent: bool
    error: str | None = None


async def send_cost_updates(
    *,
    station_id: str,
    transactions: TransactionService,
    tariffs: TariffService,
    commands: CommandSender,
    now: datetime,
) -> list[CostUpdateResult]:
    """Send CostUpdated for every active transaction of the station; one result each."""
    tariff: Tariff | None = await tariffs.get(station_id)
    results: list[CostUpdateResult] = []
    offset = 0
    while True:
        page = await transactions.list(
            offset, 200, station_id=station_id, state=TransactionState.ACTIVE
        )
        for tx in page.items:
            cost = running_cost(tariff, tx.energy_wh, tx.started_at, now)
            if cost is None:
                results.append(CostUpdateResult(tx.transaction_id, None, False, "no tariff"))
                continue
            payload = {"totalCost": cost, "transactionId": tx.transaction_id}
            try:
                await commands.send(station_id, "CostUpdated", payload)
            except CsmsError as exc:
                logger.info(
                    "CostUpdated for %s/%s not sent: %s", station_id, tx.transaction_id, exc
                )
                results.append(CostUpdateResult(tx.transaction_id, cost, False, str(exc)))
            else:
                results.append(CostUpdateResult(tx.transaction_id, cost, True))
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return results
