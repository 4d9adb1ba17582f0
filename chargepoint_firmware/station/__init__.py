"""What every block of the agent shares: the injectable clock, the typed configuration view,
the device model adapter and waits that end early on a configuration change."""
