"""CSIP-AUS telemetry and subscriptions per site (issue 18; migration 0016), on the same
`metadata` as csms.persistence.tables: the MirrorUsagePoints made on the server (so a restart
posts to them instead of making new ones) and the subscriptions with their notification tokens
(so any node can serve a notification: the token is looked up here, by its SHA-256 only)."""

from __future__ import annotations

import sqlalchemy as sa

from csms.persistence.tables import UtcDateTime, metadata

csip_mirror_points = sa.Table(
    "csip_mirror_points",
    metadata,
    sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.id", ondelete="CASCADE")),
    sa.Column("role", sa.String(8)),  # site | der (csms.domain.csip_telemetry.Role)
    sa.Column("mrid", sa.String(32), nullable=False),
    sa.Column("href", sa.String(256)),  # the server's Location; None until made
    sa.Column("post_rate_s", sa.Integer),  # the server's postRate, bounded
    sa.Column("last_period_end", UtcDateTime),  # end of the last period reported
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.PrimaryKeyConstraint("site_id", "role"),
)

csip_subscriptions = sa.Table(
    "csip_subscriptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # SHA-256 (hex) of the notification token: the database never holds the token itself.
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "site_id", sa.String(64), sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("resource_href", sa.String(256), nullable=False),  # what is subscribed to
    sa.Column("list_href", sa.String(256), nullable=False),  # the SubscriptionList posted to
    sa.Column("subscription_href", sa.String(256)),  # the server's Location of it
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_notified_at", UtcDateTime),
    sa.Column("notifications", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("site_id", "resource_href"),
)
