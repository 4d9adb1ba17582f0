"""Which API token scope each CSMS-initiated OCPP 2.0.1 / 2.1 action needs. The actions and their
request validation (OCA JSON schemas, every violation named for a 422) live in
`csms.oca_schemas`."""

from __future__ import annotations

from typing import Any

from csms.domain.models import ApiScope
from csms.oca_schemas import ANY_VERSION_CSMS_INITIATED

# Actions an `operate` token may not send through the generic route: they change where the
# station connects or whom it trusts (network profile, certificates), what code it runs
# (firmware), who may charge (local list), or ship data to a URL the caller names (logs,
# customer information). The typed routes for these are admin as well.
ADMIN_ACTIONS = frozenset(
    {
        "SetNetworkProfile",
        "CertificateSigned",
        "InstallCertificate",
        "DeleteCertificate",
        "UpdateFirmware",
        "PublishFirmware",
        "UnpublishFirmware",
        "GetLog",
        "CustomerInformation",
        "SendLocalList",
        # OCPP 2.1: what customers pay (tariffs are admin in the REST API too).
        "SetDefaultTariff",
        "ClearTariffs",
        "ChangeTransactionTariff",
    }
)
# Device-model variables that are credentials or decide where the station connects.
ADMIN_COMPONENTS = frozenset({"SecurityCtrlr"})
ADMIN_VARIABLES = frozenset({("OCPPCommCtrlr", "NetworkConfigurationPriority")})


def _sets_admin_variable(payload: Any) -> bool:
    items = payload.get("setVariableData") if isinstance(payload, dict) else None
    for item in items if isinstance(items, list) else ():
        component = item.get("component") if isinstance(item, dict) else None
        variable = item.get("variable") if isinstance(item, dict) else None
        c_name = component.get("name") if isinstance(component, dict) else None
        v_name = variable.get("name") if isinstance(variable, dict) else None
        if c_name in ADMIN_COMPONENTS or (c_name, v_name) in ADMIN_VARIABLES:
            return True
    return False


def action_scope(action: str, payload: Any) -> ApiScope:
    """The API token scope needed to send `action` with `payload` to a station."""
    if action in ADMIN_ACTIONS:
        return ApiScope.ADMIN
    if action == "SetVariables" and _sets_admin_variable(payload):
        return ApiScope.ADMIN
    return ApiScope.OPERATE


def is_csms_initiated_action(action: str) -> bool:
    """An action the CSMS sends in some version it speaks (the station's version is checked
    by the command service)."""
    return action in _ANY_VERSION


_ANY_VERSION = frozenset(ANY_VERSION_CSMS_INITIATED)
