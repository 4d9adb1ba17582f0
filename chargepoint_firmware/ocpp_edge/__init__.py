"""The agent's protocol edge, and nothing else: the websocket connection and its back-off, the
OCPP-J session (framing fixes, CALLERROR handling, schema errors), the durable outbox, the
redaction of secrets in frame logs, OCPP timestamps and task helpers. Imports no block."""
