"""OCPP handlers, one mixin per functional block, combined in session.StationSession."""
