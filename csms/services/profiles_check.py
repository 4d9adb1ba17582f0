"""K01 checks the CSMS runs before sending SetChargingProfile. One function, so that the rules
stay those of `v2g_shared.schedule.validation` (shared with the agent)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from csms.domain.errors import CommandValidationError
from csms.domain.models import ChargingProfileRecord
from v2g_shared.schedule.model import (
    PURPOSES_2_1,
    InstalledProfile,
    OperationMode,
    ProfileFormatError,
    profile_from_ocpp,
)
from v2g_shared.schedule.validation import ValidationContext, validate_profile


def check_set_charging_profile(
    payload: Mapping[str, Any],
    *,
    known_evse_ids: Iterable[int],
    active_transactions: Mapping[int, str],
    stored: Iterable[ChargingProfileRecord],
    negative_limit_is_discharge: bool,
    max_stack_level: int | None = None,
    max_periods: int | None = None,
    schema_checked_only: bool = False,
    ocpp_2_1: bool = False,
    supported_operation_modes: str | None = None,
) -> None:
    """Raise CommandValidationError naming the K01 rule(s) a SetChargingProfile breaks.

    The payload is only read, never rewritten: what is sent is what the caller gave.
    `ocpp_2_1`: the profile travels in OCPP 2.1 (its V2X rules run, 2.1 purposes allowed;
    `supported_operation_modes` is the station's V2XChargingCtrlr.SupportedOperationModes as
    reported, a comma-separated list, None = every mode). Over 2.0.1 the shared rules refuse
    2.1 fields.
    `schema_checked_only` (an OCPP 2.1 station, its payload already valid against the 2.1
    schema): a profile the shared model cannot read passes here; the station applies K01 to it
    itself."""
    evse_id = int(payload["evseId"])
    try:
        profile = profile_from_ocpp(payload["chargingProfile"])
    except ProfileFormatError as exc:
        if schema_checked_only:
            return
        raise CommandValidationError("SetChargingProfile", str(exc), "chargingProfile") from exc
    installed = []
    for record in stored:
        try:
            installed.append(InstalledProfile(record.evse_id, profile_from_ocpp(record.profile)))
        except ProfileFormatError:
            continue  # a stored profile we cannot read does not block a new one
    evse_ids = frozenset(known_evse_ids)
    if not evse_ids and evse_id > 0:
        # The station has not reported its EVSEs yet: it will judge K01.FR.28 itself.
        evse_ids = frozenset({evse_id})
    context = ValidationContext(
        evse_ids=evse_ids,
        active_transactions=dict(active_transactions),
        stored=tuple(installed),
        negative_limit_is_discharge=negative_limit_is_discharge,
        max_stack_level=max_stack_level if max_stack_level is not None else 8,
        max_periods_per_schedule=max_periods if max_periods is not None else 1024,
        from_csms=True,
        ocpp_2_1=ocpp_2_1,
        supported_operation_modes=_modes(supported_operation_modes) if ocpp_2_1 else None,
        # A generic 2.1 station: the CSMS does not know it lacks a 2.1 purpose.
        supported_2_1_purposes=PURPOSES_2_1 if ocpp_2_1 else frozenset(),
    )
    violations = validate_profile(profile, context, evse_id=evse_id)
    if violations:
        text = "; ".join(f"{v.rule}: {v.message}" for v in violations)
        raise CommandValidationError("SetChargingProfile", text, "chargingProfile")


def _modes(reported: str | None) -> frozenset[OperationMode] | None:
    """V2XChargingCtrlr.SupportedOperationModes as a station reports it; None (every mode) when not
    reported or not readable (the station judges then)."""
    if not reported:
        return None
    try:
        return frozenset(OperationMode(m.strip()) for m in reported.split(",") if m.strip())
    except ValueError:
        return None
