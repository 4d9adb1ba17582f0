"""The CSIP-AUS client's pure conversions (issue 18): DERControl values scaled by their
multiplier and bounded, setGradW, poll-rate bounds, what is reported (DERCapability with the
CSIP-AUS doeModesSupported, DERSettings, DERStatus bits), and the client's settings refusing
the certificate-header mode off loopback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from envoy_schema.server.schema.sep2.der import DERControlBase, DERControlResponse
from envoy_schema.server.schema.sep2.der_control_types import ActivePower

from csms.integrations.csip import convert
from csms.integrations.csip.service import build_csip
from csms.integrations.csip.transport import TransportRefused, parse, serialize
from csms.settings import Settings
from tests.support.csip_server import make_identity

NOW = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
NS = 'xmlns="urn:ieee:std:2030.5:ns" xmlns:csipaus="https://csipaus.org/ns"'


def _control(base: str, extra: str = "", status: int = 1) -> DERControlResponse:
    xml = (
        f'<DERControl {NS} href="/derp/1/derc/7" replyTo="/rsp" responseRequired="03">'
        f"<mRID>ABCDEF01</mRID><creationTime>{int(NOW.timestamp())}</creationTime>"
        f"<EventStatus><currentStatus>{status}</currentStatus><dateTime>0</dateTime>"
        "<potentiallySuperseded>false</potentiallySuperseded></EventStatus>"
        f"<interval><duration>600</duration><start>{int(NOW.timestamp())}</start></interval>"
        f"{extra}<DERControlBase>{base}</DERControlBase></DERControl>"
    )
    return parse(DERControlResponse, xml.encode())


def test_control_values_are_scaled_by_their_multiplier() -> None:
    doc = _control(
        "<csipaus:opModExpLimW><multiplier>-1</multiplier><value>15000</value>"
        "</csipaus:opModExpLimW><csipaus:opModImpLimW><multiplier>3</multiplier><value>7</value>"
        "</csipaus:opModImpLimW><opModEnergize>false</opModEnergize>",
        "<randomizeStart>-30</randomizeStart>",
    )
    control = convert.control_of(doc, "/edev/1/derp/1", primacy=2)
    assert control.limits.export_limit_w == pytest.approx(1500)
    assert control.limits.import_limit_w == pytest.approx(7000)
    assert control.limits.energize is False and control.limits.generation_limit_w is None
    assert (control.mrid, control.primacy, control.duration_s) == ("ABCDEF01", 2, 600)
    assert control.start == NOW and control.randomize_start_s == -30
    assert control.reply_to == "/rsp" and control.response_required == 3
    assert control.unsupported_modes == frozenset()


@pytest.mark.parametrize(
    "multiplier,value",
    [(0, -1), (0, 10**7 + 1), (20, 1), (-20, 1), (7, 2)],
)
def test_out_of_bounds_limits_are_refused_not_clipped(multiplier: int, value: int) -> None:
    with pytest.raises(convert.CsipValueError):
        convert.watts("opModExpLimW", ActivePower(multiplier=multiplier, value=value))


@pytest.mark.parametrize(
    "extra,status",
    [
        ("<randomizeStart>3601</randomizeStart>", 1),
        ("", 9),
    ],
)
def test_out_of_bounds_control_fields_are_refused(extra: str, status: int) -> None:
    with pytest.raises(convert.CsipValueError):
        convert.control_of(_control("", extra, status), "/p", 0)


def test_a_control_with_only_modes_we_do_not_map_is_marked() -> None:
    doc = _control("<opModFixedW>50</opModFixedW>")
    assert convert.control_of(doc, "/p", 0).unsupported_modes == frozenset({"opModFixedW"})


def test_set_grad_w_is_hundredths_of_a_percent_per_second() -> None:
    assert convert.ramp_pct_per_s(27) == pytest.approx(0.27)
    assert convert.ramp_pct_per_s(0) is None  # 2030.5: 0 = no limit
    assert convert.ramp_pct_per_s(None) is None
    with pytest.raises(convert.CsipValueError):
        convert.ramp_pct_per_s(10_001)
    base = DERControlBase()
    assert convert.limits_of(base, 100).ramp_rate_pct_per_s == pytest.approx(1.0)


def test_ramp_tms_is_hundredths_of_a_second_bounded() -> None:
    """DERControlBase.rampTms (CACTUS ALL-25/28 send 6000: 60 s); 0 or absent: no ramp of its
    own; longer than MAX_RAMP_TIME_S clamped; negative passed on to be rejected (253)."""
    control = convert.control_of(_control("<rampTms>6000</rampTms>"), "/p", 0)
    assert control.ramp_time_s == pytest.approx(60.0)
    assert control.unsupported_modes == frozenset()
    assert convert.ramp_time_s(None) is None and convert.ramp_time_s(0) is None
    assert convert.ramp_time_s(65_535) == pytest.approx(655.35)
    assert convert.ramp_time_s(10**9) == convert.MAX_RAMP_TIME_S
    negative = convert.ramp_time_s(-5)
    assert negative is not None and negative < 0


def test_poll_rates_are_bounded() -> None:
    assert convert.bounded_poll_rate(60, 10, 3600) == 60
    assert convert.bounded_poll_rate(1, 10, 3600) == 10
    assert convert.bounded_poll_rate(10**9, 10, 3600) == 3600
    assert convert.bounded_poll_rate(None, 10, 3600) == 900  # 2030.5's default


def test_reports_carry_the_csip_aus_fields() -> None:
    ratings = convert.SiteRatings(max_charge_w=7200, max_discharge_w=50_000)
    cap = serialize(convert.der_capability(ratings)).decode()
    assert "<csipaus:doeModesSupported>0F</csipaus:doeModesSupported>" in cap
    # 50 kW does not fit an Int16: 5000 x 10^1.
    assert "<rtgMaxW><multiplier>1</multiplier><value>5000</value></rtgMaxW>" in cap
    assert "<type>81</type>" in cap  # electric vehicle
    settings = serialize(convert.der_settings(ratings, NOW)).decode()
    assert "<csipaus:doeModesEnabled>0F</csipaus:doeModesEnabled>" in settings
    assert f"<updatedTime>{int(NOW.timestamp())}</updatedTime>" in settings
    on = serialize(convert.der_status(convert.SiteLiveState(True, True), NOW)).decode()
    assert "<genConnectStatus><dateTime>" in on and "<value>07</value>" in on
    assert "<operationalModeStatus><dateTime>" in on
    off = convert.der_status(convert.SiteLiveState(False, False), NOW)
    assert off.genConnectStatus is not None and off.genConnectStatus.value == "00"
    assert off.operationalModeStatus is not None and off.operationalModeStatus.value == 1


def test_settings_refuse_the_certificate_header_off_loopback(tmp_path: Path) -> None:
    cert = tmp_path / "aggregator.pem"
    cert.write_text(make_identity().cert_pem)
    settings = Settings(
        csip_enabled=True,
        csip_server_url="http://dnsp.example.com/dcap",
        csip_cert_file=cert,
        csip_cert_header_mode=True,
    )
    with pytest.raises(TransportRefused, match="loopback"):
        build_csip(
            settings,
            None,
            node_id="n",
            clock=lambda: NOW,
            connected_ids=list,
            power_w=lambda s: None,
        )  # type: ignore[arg-type]
    assert (
        build_csip(
            Settings(),
            None,
            node_id="n",
            clock=lambda: NOW,
            connected_ids=list,
            power_w=lambda s: None,
        )  # type: ignore[arg-type]
        is None
    )
    with pytest.raises(ValueError, match="csip_key_file"):
        Settings(csip_enabled=True, csip_server_url="https://x/dcap", csip_cert_file=cert)
