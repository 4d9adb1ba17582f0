"""Repositories by aggregate: functions that take an AsyncConnection and return domain objects.

Reads run on `Database.read()` connections; writes are composed by services into one op and
run through `Database.write()` (the group commit), so one station message = one op. Rows map to
records through one `TableMapper` per table (`mapper.py`), built when the module loads.

This package's namespace is the API the services use (`from csms.persistence import
repositories as repo`); the V2G functions are one module of it
(`from csms.persistence.repositories import v2g as vrepo`).
"""

from __future__ import annotations

from csms.persistence.repositories.api_tokens import (
    get_api_token_by_hash,
    insert_api_token,
    list_api_tokens,
    revoke_api_token,
    revoke_api_tokens_named,
)
from csms.persistence.repositories.certificates import (
    insert_certificate,
    list_certificates,
    update_certificate,
)
from csms.persistence.repositories.charging_profiles import (
    delete_charging_profiles,
    list_charging_profiles,
    upsert_charging_profile,
)
from csms.persistence.repositories.device_model import (
    list_device_variables,
    upsert_device_variables,
    variable_key,
)
from csms.persistence.repositories.events import (
    event_write,
    insert_event,
    insert_events,
    list_events,
)
from csms.persistence.repositories.id_tokens import (
    delete_id_token,
    get_id_token,
    list_id_tokens,
    set_id_token_status,
    upsert_id_token,
)
from csms.persistence.repositories.message_log import (
    insert_log_entries,
    list_log_entries,
    log_entries_write,
    prune_log,
    prune_log_rows,
    sent_remote_starts,
)
from csms.persistence.repositories.meter_values import (
    add_samples_on_evse,
    insert_meter_samples,
    insert_packed_rows,
    list_meter_samples,
    pack_samples,
    page_meter_rows,
    page_meter_samples,
)
from csms.persistence.repositories.stations import (
    boot_write,
    connector_status_writes,
    connectors_of,
    delete_station,
    get_station,
    get_station_auth,
    get_station_for_admission,
    get_stations_for_admission,
    heartbeat_write,
    insert_station,
    list_evses,
    list_stations,
    record_boot,
    record_heartbeat,
    record_ocpp_version,
    set_password_check,
    update_station,
    upsert_connector_status,
)
from csms.persistence.repositories.tariffs import (
    delete_tariff,
    get_tariff,
    upsert_tariff,
)
from csms.persistence.repositories.transactions import (
    active_transactions_on_evses,
    get_transaction,
    get_transaction_and_tariff,
    insert_transaction_event,
    insert_transaction_events,
    list_transaction_events,
    list_transactions,
    save_transaction,
    save_transactions,
    stored_seq_nos,
    totals_since,
    transactions_and_tariffs,
    transactions_tariffs_and_running,
)

__all__ = [
    "active_transactions_on_evses",
    "add_samples_on_evse",
    "boot_write",
    "connector_status_writes",
    "connectors_of",
    "delete_charging_profiles",
    "delete_id_token",
    "delete_station",
    "delete_tariff",
    "event_write",
    "get_api_token_by_hash",
    "get_id_token",
    "get_station",
    "get_station_auth",
    "get_station_for_admission",
    "get_stations_for_admission",
    "get_tariff",
    "get_transaction",
    "get_transaction_and_tariff",
    "heartbeat_write",
    "insert_api_token",
    "insert_certificate",
    "insert_event",
    "insert_events",
    "insert_log_entries",
    "insert_meter_samples",
    "insert_packed_rows",
    "insert_station",
    "insert_transaction_event",
    "insert_transaction_events",
    "list_api_tokens",
    "list_certificates",
    "list_charging_profiles",
    "list_device_variables",
    "list_events",
    "list_evses",
    "list_id_tokens",
    "list_log_entries",
    "list_meter_samples",
    "list_stations",
    "list_transaction_events",
    "list_transactions",
    "log_entries_write",
    "pack_samples",
    "page_meter_rows",
    "page_meter_samples",
    "prune_log",
    "prune_log_rows",
    "record_boot",
    "record_heartbeat",
    "record_ocpp_version",
    "revoke_api_token",
    "revoke_api_tokens_named",
    "save_transaction",
    "save_transactions",
    "sent_remote_starts",
    "set_id_token_status",
    "set_password_check",
    "stored_seq_nos",
    "totals_since",
    "transactions_and_tariffs",
    "transactions_tariffs_and_running",
    "update_certificate",
    "update_station",
    "upsert_charging_profile",
    "upsert_connector_status",
    "upsert_device_variables",
    "upsert_id_token",
    "upsert_tariff",
    "variable_key",
]
