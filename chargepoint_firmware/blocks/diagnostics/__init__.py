"""Blocks A04/L/N/P: problem and security events, simulated log upload and firmware update,
DataTransfer."""
