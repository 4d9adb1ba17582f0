"""What every block of the agent shares: the injectable clock, the typed configuration view
(read through the device model, with the OCPP defaults) and waits that end early on a
configuration change. Imports no block, no edge and not the agent."""
