"""The CSIP-AUS telemetry documents (envoy-schema models) as envoy parses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from envoy_schema.server.schema.sep2.metering_mirror import (
    MirrorMeterReadingListRequest,
    MirrorUsagePointRequest,
)

from csms.domain import csip_telemetry as ct
from csms.domain.csip_telemetry import Quantity, Role
from csms.integrations.csip.telemetry import meter_readings, mirror_usage_point
from csms.integrations.csip.transport import parse, serialize

LFDI = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"
START = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)


def test_site_and_der_mirror_usage_points_per_csip_aus_annex_a() -> None:
    for role, flags, flow in ((Role.SITE, "03", 1), (Role.DER, "49", 19)):
        mup = parse(MirrorUsagePointRequest, serialize(mirror_usage_point(LFDI, role, 1234)))
        assert mup.roleFlags == flags
        assert int(mup.serviceCategoryKind) == 0 and mup.status == 1  # electricity, on
        assert mup.deviceLFDI == LFDI.upper()
        assert int(mup.mRID[-8:]) == 1234
        mmrs = mup.mirrorMeterReadings or []
        types = {
            (int(m.readingType.uom), int(m.readingType.powerOfTenMultiplier))  # type: ignore[union-attr,arg-type]
            for m in mmrs
        }
        assert types == {(38, 0), (63, 0), (29, -1)}
        for m in mmrs:
            rt = m.readingType
            assert rt is not None
            direction = 0 if int(rt.uom) == 29 else flow  # type: ignore[arg-type]
            assert (int(rt.kind), int(rt.dataQualifier), int(rt.flowDirection)) == (  # type: ignore[arg-type]
                37,
                2,
                direction,
            )
            assert int(m.mRID[-8:]) == 1234
        assert len({m.mRID for m in mmrs} | {mup.mRID}) == 4


def test_readings_cover_the_period_with_scaled_integers() -> None:
    end = START + timedelta(minutes=5)
    document = meter_readings(
        LFDI,
        Role.DER,
        0,
        {Quantity.ACTIVE_POWER: 3000.4, Quantity.VOLTAGE: 231.06},
        START,
        end,
        end + timedelta(minutes=5),
    )
    parsed = parse(MirrorMeterReadingListRequest, serialize(document))
    by_mrid = {m.mRID: m for m in parsed.mirrorMeterReadings or []}
    watts = by_mrid[ct.mrid(LFDI, Role.DER, Quantity.ACTIVE_POWER, 0)]
    volts = by_mrid[ct.mrid(LFDI, Role.DER, Quantity.VOLTAGE, 0)]
    assert ct.mrid(LFDI, Role.DER, Quantity.REACTIVE_POWER, 0) not in by_mrid  # nothing to say
    assert watts.reading is not None and volts.reading is not None
    assert (watts.reading.value, volts.reading.value) == (3000, 2311)
    period = watts.reading.timePeriod
    assert period is not None
    assert (period.start, period.duration) == (int(START.timestamp()), 300)
