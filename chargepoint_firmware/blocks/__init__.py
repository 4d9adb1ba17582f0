"""The agent's application logic by OCPP 2.0.1 functional block, each block's logic beside its
handlers (`<block>/handlers.py`, a mixin the composition root combines into the session). A
block depends on narrow interfaces (typing.Protocol, callables) for what it needs from the
others, never on the Agent."""
