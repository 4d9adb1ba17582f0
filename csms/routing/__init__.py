"""Reaching the node that holds a station: in-process now, a broker later."""

from csms.routing.base import CommandRouter, StationLink
from csms.routing.inprocess import InProcessRouter

__all__ = ["CommandRouter", "InProcessRouter", "StationLink"]
