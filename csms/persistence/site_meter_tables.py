"""The household meter of each site (issue 18; migration 0018), on the same `metadata` as
csms.persistence.tables: the latest reading per site, the site base computed from it (the
reading minus the chargers' own power at that time), and the bases the site's stations were
last sent a profile with (so any node decides alike whether a new reading needs a re-send)."""

from __future__ import annotations

import sqlalchemy as sa

from csms.persistence.tables import UtcDateTime, metadata

site_meters = sa.Table(
    "site_meters",
    metadata,
    sa.Column(
        "site_id", sa.String(64), sa.ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("source", sa.String(8), nullable=False),  # api | mqtt | ocpp
    sa.Column("measured_at", UtcDateTime, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("grid_import_w", sa.Float, nullable=False),  # + import, - export
    sa.Column("load_w", sa.Float),
    sa.Column("solar_w", sa.Float),
    sa.Column("base_low_w", sa.Float, nullable=False),
    sa.Column("base_high_w", sa.Float, nullable=False),
    sa.Column("chargers_w", sa.Float, nullable=False),
    sa.Column("unknown_stations", sa.Integer, nullable=False, server_default="0"),
    # The bases of the last re-send the meter caused (None: none yet).
    sa.Column("applied_charge_base_w", sa.Float),
    sa.Column("applied_discharge_base_w", sa.Float),
    sa.Column("applied_at", UtcDateTime),
)
