import pytest

from v2g_shared.ocpp_versions import OcppVersion, parse_ocpp_version


def test_subprotocol_names_are_the_ocpp_j_ones() -> None:
    assert OcppVersion.V201 == "ocpp2.0.1"
    assert OcppVersion.V21 == "ocpp2.1"
    assert OcppVersion.V21.label == "2.1"


@pytest.mark.parametrize("text", ["ocpp2.1", "2.1", " OCPP2.1 "])
def test_parse_accepts_both_spellings(text: str) -> None:
    assert parse_ocpp_version(text) is OcppVersion.V21


def test_parse_refuses_unknown_version_naming_the_offer() -> None:
    with pytest.raises(ValueError, match=r"2\.0\.1, 2\.1"):
        parse_ocpp_version("1.6")
