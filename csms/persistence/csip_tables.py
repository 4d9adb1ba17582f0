"""CSIP-AUS client state per site (issue 18; migration 0015), on the same `metadata` as
csms.persistence.tables: what the aggregator client needs to resume after a restart and what
`GET /sites/{id}/csip` shows. JSON columns hold bounded documents written by the client."""

from __future__ import annotations

import sqlalchemy as sa

from csms.persistence.tables import UtcDateTime, metadata

csip_sites = sa.Table(
    "csip_sites",
    metadata,
    sa.Column(
        "site_id", sa.String(64), sa.ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    ),
    # unregistered | registered | pin_mismatch | error
    sa.Column("registration", sa.String(16), nullable=False),
    sa.Column("edev_href", sa.String(256)),
    # Discovered hrefs (der, dercap, derg, ders, fsa, derp lists ...) and server poll rates (s).
    sa.Column("hrefs_json", sa.Text, nullable=False),
    sa.Column("poll_rates_json", sa.Text, nullable=False),
    # The server's clock minus ours, seconds (from its Time resource).
    sa.Column("clock_offset_s", sa.Float, nullable=False),
    sa.Column("last_poll_at", UtcDateTime),
    sa.Column("next_poll_at", UtcDateTime),
    sa.Column("last_error", sa.String(500)),
    sa.Column("last_error_at", UtcDateTime),
    # csms.domain.csip_controls ControlRecords (JSON list) and the controls in force (mRIDs).
    sa.Column("control_records_json", sa.Text, nullable=False),
    sa.Column("active_controls_json", sa.Text, nullable=False),
    # The node polling this site until lease_until (another may take it over after).
    sa.Column("lease_node", sa.String(128)),
    sa.Column("lease_until", UtcDateTime),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
