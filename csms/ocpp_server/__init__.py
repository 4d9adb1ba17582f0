"""The CSMS's OCPP 2.0.1 edge: websocket endpoint, sessions, per-block handlers.

`start_ocpp_server(settings, services)` lives in `csms.ocpp_server.server`. The OCA schemas
and the action list live in `csms.oca_schemas` (used by the API and the services too)."""
