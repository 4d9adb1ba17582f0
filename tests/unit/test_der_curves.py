"""AS/NZS 4777.2 grid-code curves and their SetDERControl form (csms.v2g.der_curves)."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from csms.v2g.der_curves import (
    FREQUENCY_SETTINGS,
    VERIFIED,
    CurveKind,
    DerCurveSetting,
    Region,
    check_curve,
    default_curve,
    interpolate,
    set_der_control_request,
    setting_from_dict,
)


def _schema() -> dict:
    path = resources.files("ocpp") / "v21" / "schemas" / "SetDERControlRequest.json"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("region", list(Region))
@pytest.mark.parametrize("kind", list(CurveKind))
def test_every_default_is_a_valid_curve_and_a_schema_valid_request(kind, region):
    points = default_curve(kind, region)
    assert check_curve(kind, points) == points
    request = set_der_control_request(DerCurveSetting("cs", kind, points, region))
    jsonschema.Draft6Validator(_schema()).validate(request)


def test_australia_a_frequency_response_matches_the_published_region_settings():
    # f_Pmax, f_stop_ch, f_LLCO, f_ULCO, f_transition, f_Pmin (module doc gives the source)
    assert FREQUENCY_SETTINGS[Region.AUSTRALIA_A] == (48.0, 49.0, 49.75, 50.25, 50.75, 52.0)
    under = default_curve(CurveKind.FREQ_WATT_UNDER, Region.AUSTRALIA_A)
    over = default_curve(CurveKind.FREQ_WATT_OVER, Region.AUSTRALIA_A)
    assert interpolate(under, 49.0) == 0.0  # charging stopped at f_stop_ch
    assert interpolate(under, 48.0) == -100.0  # full discharge at f_Pmax
    assert interpolate(over, 50.75) == 0.0 and interpolate(over, 52.0) == 100.0
    assert VERIFIED[CurveKind.FREQ_WATT_OVER] and not VERIFIED[CurveKind.VOLT_VAR]


def test_volt_curves_go_out_as_percent_of_nominal_voltage():
    setting = DerCurveSetting(
        "cs", CurveKind.VOLT_WATT, ((253.0, 100.0), (260.0, 20.0)), nominal_v=230.0
    )
    request = set_der_control_request(setting)
    assert request["controlType"] == "VoltWatt"
    assert request["curve"]["curveData"][0] == {"x": 110.0, "y": 100.0}
    assert request["curve"]["yUnit"] == "PctMaxW"


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[250, 100]], "2 to 10"),
        ([[250, 100], [240, 20]], "strictly increase"),
        ([[250, 100], [260, 120]], "outside"),
        ([[250, 100], [float("nan"), 20]], "finite"),
        ([[250, 100, 3], [260, 20]], "two numbers"),
    ],
)
def test_a_dnsp_curve_is_checked(points, message):
    with pytest.raises(ValueError, match=message):
        check_curve(CurveKind.VOLT_WATT, points)


def test_setting_round_trips_through_its_stored_form():
    setting = DerCurveSetting(
        "cs",
        CurveKind.VOLT_VAR,
        default_curve(CurveKind.VOLT_VAR, Region.AUSTRALIA_B),
        Region.AUSTRALIA_B,
        priority=3,
    )
    assert setting_from_dict("cs", setting.as_dict()) == setting
