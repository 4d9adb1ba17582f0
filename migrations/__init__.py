"""Alembic migrations; installed as the package csms._migrations (see setup.py)."""
