"""Site validation (csms/domain/sites.py): what an operator may enter."""

from __future__ import annotations

import pytest

from csms.domain.sites import Site, nmi_checksum, nmi_problem


@pytest.mark.parametrize(
    ("nmi10", "digit"),
    # Worked examples of the NMI Procedure (AEMO), Appendix on the checksum.
    [("2001985732", 8), ("2001985733", 6), ("QAAAVZZZZZ", 3), ("VKTS786150", 2)],
)
def test_nmi_checksum_matches_aemo_examples(nmi10: str, digit: int) -> None:
    assert nmi_checksum(nmi10) == digit
    assert nmi_problem(nmi10 + str(digit)) is None
    assert nmi_problem(nmi10) is None
    assert "checksum digit should be" in str(nmi_problem(nmi10 + str((digit + 1) % 10)))


@pytest.mark.parametrize(
    "bad", ["", "123", "200198573", "2001985732xx", "OAAAVZZZZZ", "2001 85732"]
)
def test_malformed_nmi_is_refused(bad: str) -> None:
    assert nmi_problem(bad) is not None
    with pytest.raises(ValueError):
        Site("s", "S", nmi=bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": "has space"},
        {"id": "x" * 65},
        {"name": ""},
        {"lfdi": "ab" * 19},
        {"lfdi": "zz" * 20},
        {"sfdi": 0},
        {"sfdi": 10**12},
        {"registration_pin": 1_000_000},
        {"station_ids": ("a", "a")},
        {"station_ids": tuple(f"s{i}" for i in range(65))},
    ],
)
def test_site_refuses_out_of_range_fields(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"id": "home", "name": "Home"} | kwargs
    with pytest.raises(ValueError):
        Site(**fields)  # type: ignore[arg-type]
