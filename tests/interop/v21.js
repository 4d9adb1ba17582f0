'use strict';
// OCPP 2.1 for the Node harness (server.js as a strict 2.1 CSMS): ocpp-rpc 2.2.1 ships the 2.1
// schemas (lib/schemas/ocpp2_1.json) but under the ids `urn:<Action>Request` /
// `urn:<Action>Response`, while its strict mode looks up `urn:<Action>.req` / `.conf` (the
// 2.0.1 naming): its own 2.1 validator fails every message with "Schema ... is missing". This
// validator maps the two namings onto the same OCA 2.1 schemas, nothing else.

const { createValidator } = require('ocpp-rpc');

const PROTOCOL_21 = 'ocpp2.1';
const SCHEMAS_21 = require('ocpp-rpc/lib/schemas/ocpp2_1.json');

function schemaId21(schemaId) {
    if (schemaId.endsWith('.req')) return `${schemaId.slice(0, -4)}Request`;
    if (schemaId.endsWith('.conf')) return `${schemaId.slice(0, -5)}Response`;
    return schemaId;
}

function validator21() {
    const v = createValidator(PROTOCOL_21, SCHEMAS_21);
    const validate = v.validate.bind(v);
    v.validate = (schemaId, params) => validate(schemaId21(schemaId), params);
    return v;
}

const empty = () => ({});

// Default answers of a 2.1 CSMS to the station-initiated actions that are new in 2.1.
const CS_TO_CSMS_21_DEFAULTS = {
    BatterySwap: empty,
    ClosePeriodicEventStream: empty,
    GetCertificateChainStatus: () => ({ certificateStatus: [] }),
    NotifyDERAlarm: empty,
    NotifyDERStartStop: empty,
    NotifyPriorityCharging: empty,
    NotifySettlement: empty,
    OpenPeriodicEventStream: () => ({ status: 'Accepted' }),
    PullDynamicScheduleUpdate: () => ({ status: 'Rejected' }),
    ReportDERControl: empty,
    VatNumberValidation: (p) => ({ status: 'Rejected', vatNumber: p.vatNumber ?? '' }),
};

// Answers whose 2.0.1 default is not valid under 2.1.
const CHANGED_IN_21 = {
    Get15118EVCertificate: () => ({ status: 'Failed', exiResponse: '' }),
};

function isV21(protocol) {
    return protocol === PROTOCOL_21;
}

module.exports = { PROTOCOL_21, validator21, schemaId21, CS_TO_CSMS_21_DEFAULTS, CHANGED_IN_21, isV21 };
