"""Blocks E/F/J: the TransactionEvent lifecycle, remote start/stop, meter values and sampling."""
