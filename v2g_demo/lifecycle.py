"""Stopping a simulated station of the demo cleanly."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chargepoint_firmware.simulate import SimStation

# Hardware states of a CHAdeMO session still under way (chargepoint_firmware SessionState).
SESSION_UNDER_WAY = frozenset({"preparing", "charging", "discharging", "suspended", "stopping"})


async def stop_station(station: SimStation, within_s: float = 10.0) -> None:
    """End the transaction, let the CHAdeMO stop sequence finish, then stop the agent. The
    sequence runs in real time whatever --speed is (the car must open its contactor); a stop
    in the middle of the start-up sequence can take longer than the agent's 3 s drain."""
    from chargepoint_firmware.interfaces import HardwareEventKind

    if station.online and station.status().state.value in SESSION_UNDER_WAY:
        ended = asyncio.Event()
        station.subscribe(
            lambda event: ended.set() if event.kind is HardwareEventKind.SESSION_ENDED else None
        )
        station.agent.shutdown()  # the transaction ends now; a second call ends nothing more
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), within_s)
    await station.stop(drain_s=3.0)
