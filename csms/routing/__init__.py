"""Reaching the node that holds a station: in process (inprocess.py), or through a broker:
the broker-neutral router (broker.py, wire.py, holders.py) and one thin backend per broker
(nats_router.py, redis_router.py); factory.py picks one from the settings."""

from csms.routing.base import CommandRouter, StationLink
from csms.routing.inprocess import InProcessRouter

__all__ = ["CommandRouter", "InProcessRouter", "StationLink"]
