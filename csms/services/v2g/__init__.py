"""V2G use cases, split by concept: vehicles, sessions (context of a plugged-in vehicle),
prices, planning, fleet (flexibility, bids, dispatch), frequency response, backup, economics.
`V2gService` (service.py) is the one object the API, the CLI and the Home Assistant bridge use.

The pure logic is csms.v2g; these modules read and write the database, run the LP in a worker
thread (`asyncio.to_thread`) and send OCPP commands through the CommandService. Ids of the
TxProfiles they send: profiles.py.
"""

from csms.services.v2g.records import (
    BackupState,
    DispatchOutcome,
    EconomicsReport,
    PlanRequest,
    SentPlan,
    SessionContext,
    VehiclePlanRequest,
)
from csms.services.v2g.service import V2gService, v2g_service_for
from csms.services.v2g.settings import V2gSettings

__all__ = [
    "BackupState",
    "DispatchOutcome",
    "EconomicsReport",
    "PlanRequest",
    "SentPlan",
    "SessionContext",
    "V2gService",
    "V2gSettings",
    "VehiclePlanRequest",
    "v2g_service_for",
]
