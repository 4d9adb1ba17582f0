"""Block K: charging profiles, the setpoint of each EVSE, and the local V2X response."""
