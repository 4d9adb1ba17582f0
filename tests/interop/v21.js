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
    // Every certificate asked about: status Unknown (this harness runs no OCSP responder).
    GetCertificateChainStatus: (p) => ({
        certificateStatus: (p.certificateStatusRequests ?? []).map((r) => ({
            source: r.source,
            status: 'Unknown',
            nextUpdate: new Date(Date.now() + 3600e3).toISOString(),
            certificateHashData: r.certificateHashData,
        })),
    }),
    NotifyDERAlarm: empty,
    NotifyDERStartStop: empty,
    NotifyPriorityCharging: empty,
    NotifySettlement: empty,
    OpenPeriodicEventStream: () => ({ status: 'Accepted' }),
    PullDynamicScheduleUpdate: () => ({ status: 'Rejected' }),
    ReportDERControl: empty,
    VatNumberValidation: (p) => ({ status: 'Rejected', vatNumber: p.vatNumber ?? '' }),
};

// --self-check: every station-initiated 2.1 action has a default answer valid under 2.1.
function selfCheck21(defaults, sampleRequests) {
    const v = validator21();
    const actions = SCHEMAS_21.map((s) => s.$id)
        .filter((id) => id.endsWith('Request'))
        .map((id) => id.slice('urn:'.length, -'Request'.length))
        .filter((a) => a in defaults);
    const problems = [];
    for (const action of actions) {
        try {
            const request = sampleRequests[action] ?? SAMPLE_REQUESTS_21[action] ?? {};
            if (action in SAMPLE_REQUESTS_21) v.validate(`urn:${action}.req`, request);
            v.validate(`urn:${action}.conf`, defaults[action](request));
        } catch (err) {
            problems.push(`${action}: default answer invalid under 2.1: ${err.message}`);
        }
    }
    for (const action of Object.keys(CS_TO_CSMS_21_DEFAULTS)) {
        if (!actions.includes(action)) problems.push(`${action}: not a 2.1 action`);
    }
    return { actions: actions.length, problems };
}

// Requests for the answers that depend on them (valid under 2.1).
const SAMPLE_REQUESTS_21 = {
    GetCertificateChainStatus: {
        certificateStatusRequests: [{
            source: 'OCSP',
            urls: ['http://127.0.0.1/ocsp'],
            certificateHashData: {
                hashAlgorithm: 'SHA256', issuerNameHash: 'aa', issuerKeyHash: 'bb', serialNumber: '01',
            },
        }],
    },
};

module.exports = { SAMPLE_REQUESTS_21, PROTOCOL_21, validator21, schemaId21, CS_TO_CSMS_21_DEFAULTS, selfCheck21 };
