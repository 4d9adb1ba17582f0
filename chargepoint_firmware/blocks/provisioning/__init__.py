"""Blocks B/F: Reset, the device model (Get/SetVariables, reports), TriggerMessage."""
