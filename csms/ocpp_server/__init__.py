"""The CSMS's OCPP 2.0.1 edge: websocket endpoint, sessions, per-block handlers.

`start_ocpp_server(settings, services)` lives in `csms.ocpp_server.server` (imported lazily
so that `csms.ocpp_server.schemas` stays cheap to import from services)."""
