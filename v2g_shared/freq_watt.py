"""The frequency-watt curve (pure), shared by the CSMS (central frequency response) and the agent
(local frequency response). Power is signed: negative = discharge (inject into the grid).

Plain Python interpolation (no numpy): the agent runs on a charger's small computer and installs
without the CSMS's numeric stack."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class FreqWattCurve:
    """Piecewise-linear (Hz, W) points, Hz strictly increasing, flat beyond the ends; inside
    nominal +/- deadband the answer is 0 W."""

    points: tuple[tuple[float, float], ...]
    nominal_hz: float = 50.0
    deadband_hz: float = 0.0

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError("a frequency-watt curve needs at least two points")
        hz = [p[0] for p in self.points]
        if any(b <= a for a, b in itertools.pairwise(hz)):
            raise ValueError("curve frequencies must strictly increase")
        if self.deadband_hz < 0:
            raise ValueError("deadband must be >= 0")


def freq_watt(curve: FreqWattCurve, hz: float) -> float:
    """Power (W) the charger should run at for the measured frequency."""
    if abs(hz - curve.nominal_hz) <= curve.deadband_hz:
        return 0.0
    points = curve.points
    if hz <= points[0][0]:
        return float(points[0][1])
    if hz >= points[-1][0]:
        return float(points[-1][1])
    right = bisect.bisect_right([p[0] for p in points], hz)
    (x0, y0), (x1, y1) = points[right - 1], points[right]
    return float(y0 + (y1 - y0) * (hz - x0) / (x1 - x0))
