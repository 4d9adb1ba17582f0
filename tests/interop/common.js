'use strict';
// Shared by client.js and server.js: JSON-lines I/O, event reporting, and the schema-valid
// default answers an OCPP 2.0.1 (and, for client.js, 2.1) peer gives when a test has not
// overridden them.

const readline = require('node:readline');
const { createRPCError, createValidator } = require('ocpp-rpc');

const PROTOCOL = 'ocpp2.0.1';

// Every OCPP 2.0.1 action, by who sends the CALL. Together they must cover the schema set that
// ocpp-rpc ships (checked by --self-check). DataTransfer goes both ways.
const CS_TO_CSMS = [
    'Authorize', 'BootNotification', 'ClearedChargingLimit', 'DataTransfer',
    'FirmwareStatusNotification', 'Get15118EVCertificate', 'GetCertificateStatus', 'Heartbeat',
    'LogStatusNotification', 'MeterValues', 'NotifyChargingLimit', 'NotifyCustomerInformation',
    'NotifyDisplayMessages', 'NotifyEVChargingNeeds', 'NotifyEVChargingSchedule', 'NotifyEvent',
    'NotifyMonitoringReport', 'NotifyReport', 'PublishFirmwareStatusNotification',
    'ReportChargingProfiles', 'ReservationStatusUpdate', 'SecurityEventNotification',
    'SignCertificate', 'StatusNotification', 'TransactionEvent',
];
const CSMS_TO_CS = [
    'CancelReservation', 'CertificateSigned', 'ChangeAvailability', 'ClearCache',
    'ClearChargingProfile', 'ClearDisplayMessage', 'ClearVariableMonitoring', 'CostUpdated',
    'CustomerInformation', 'DataTransfer', 'DeleteCertificate', 'GetBaseReport',
    'GetChargingProfiles', 'GetCompositeSchedule', 'GetDisplayMessages',
    'GetInstalledCertificateIds', 'GetLocalListVersion', 'GetLog', 'GetMonitoringReport',
    'GetReport', 'GetTransactionStatus', 'GetVariables', 'InstallCertificate', 'PublishFirmware',
    'RequestStartTransaction', 'RequestStopTransaction', 'ReserveNow', 'Reset', 'SendLocalList',
    'SetChargingProfile', 'SetDisplayMessage', 'SetMonitoringBase', 'SetMonitoringLevel',
    'SetNetworkProfile', 'SetVariableMonitoring', 'SetVariables', 'TriggerMessage',
    'UnlockConnector', 'UnpublishFirmware', 'UpdateFirmware',
];

// What OCPP 2.1 adds (every 2.0.1 action stays). NotifyPeriodicEventStream is a SEND (message
// type 6), never answered.
const PROTOCOL_21 = 'ocpp2.1';
const CS_TO_CSMS_21_ADDED = [
    'BatterySwap', 'ClosePeriodicEventStream', 'GetCertificateChainStatus', 'NotifyDERAlarm',
    'NotifyDERStartStop', 'NotifyPriorityCharging', 'NotifySettlement', 'OpenPeriodicEventStream',
    'PullDynamicScheduleUpdate', 'ReportDERControl', 'VatNumberValidation',
];
const CSMS_TO_CS_21_ADDED = [
    'AFRRSignal', 'AdjustPeriodicEventStream', 'ChangeTransactionTariff', 'ClearDERControl',
    'ClearTariffs', 'GetDERControl', 'GetPeriodicEventStream', 'GetTariffs',
    'NotifyAllowedEnergyTransfer', 'NotifyWebPaymentStarted', 'RequestBatterySwap',
    'SetDERControl', 'SetDefaultTariff', 'UpdateDynamicSchedule', 'UsePriorityCharging',
];
const SENDS_21 = ['NotifyPeriodicEventStream'];

const startedAt = Date.now();

function emit(event, fields = {}) {
    // One JSON object per line on stdout; the Python helper parses every line.
    process.stdout.write(JSON.stringify({ event, t: (Date.now() - startedAt) / 1000, ...fields }) + '\n');
}

function nowIso() {
    return new Date().toISOString();
}

function errorFields(err) {
    return {
        code: err?.rpcErrorCode ?? err?.name ?? 'Error',
        description: err?.rpcErrorMessage ?? err?.message ?? String(err),
        details: err?.details ?? {},
        // For a CALLERROR received: the errorDescription exactly as the peer sent it
        // (`description` above is ocpp-rpc's generic text for the code).
        message: err?.message ?? '',
    };
}

// A strict-mode failure. `origin` says whose message broke the schema: "peer" = the system under
// test (what the tests care about), "local" = this harness script (a test-driver mistake).
function reportStrictViolation(identity, ev) {
    const err = errorFields(ev.error);
    emit('strict_violation', {
        identity,
        origin: ev.outbound ? 'local' : 'peer',
        kind: ev.isCall ? 'call' : 'result',
        action: ev.method,
        messageId: ev.messageId,
        code: err.code,
        description: err.description,
        errors: err.details?.errors ?? [],
        params: ev.params,
        result: ev.result,
    });
    // Loud on stderr too, so a human reading a failed test log cannot miss it.
    process.stderr.write(
        `STRICT VIOLATION (${ev.outbound ? 'local' : 'peer'} ${ev.isCall ? 'CALL' : 'CALLRESULT'} ` +
        `${ev.method}): ${err.code}: ${err.description}\n`,
    );
}

function reportBadMessage(identity, ev) {
    emit('bad_message', {
        identity,
        message: Buffer.isBuffer(ev.buffer) ? ev.buffer.toString('utf8') : String(ev.buffer),
        ...errorFields(ev.error),
        response: ev.response,
    });
    process.stderr.write(`BAD MESSAGE from ${identity}: ${ev.error?.message}\n`);
}

// Every event of an RPC connection that a test may want to see.
function instrument(client, identity) {
    client.on('strictValidationFailure', (ev) => reportStrictViolation(identity, ev));
    client.on('badMessage', (ev) => reportBadMessage(identity, ev));
    client.on('call', (ev) => {
        if (!ev.outbound) {
            const [, messageId, action, payload] = ev.payload;
            emit('received_call', { identity, messageId, action, payload });
        }
    });
    client.on('response', (ev) => {
        if (ev.outbound) {
            const [type, messageId, ...rest] = ev.payload;
            if (type === 3) {
                emit('sent_result', { identity, messageId, payload: rest[0] });
            } else {
                emit('sent_error', { identity, messageId, code: rest[0], description: rest[1], details: rest[2] });
            }
        }
    });
}

// Answer an override set by a test: {response} or {error: {code, description, details}},
// after `delayMs` milliseconds when given (a slow peer).
function answerFromOverride(override) {
    const answer = () => {
        if (override.error) {
            const e = override.error;
            throw createRPCError(e.code ?? 'GenericError', e.description ?? '', e.details ?? {});
        }
        return override.response;
    };
    if (override.delayMs > 0) {
        return new Promise((resolve) => setTimeout(resolve, override.delayMs)).then(answer);
    }
    return answer();
}

// Read JSON lines from stdin; each parsed object is passed to `onCommand`. End of input calls
// `onEnd` so that a harness whose parent died still shuts down.
function readCommands(onCommand, onEnd) {
    const pending = new Set();
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    rl.on('line', (line) => {
        if (!line.trim()) {
            return;
        }
        let command;
        try {
            command = JSON.parse(line);
        } catch (err) {
            emit('command_error', { error: `not JSON: ${err.message}`, line });
            return;
        }
        // Commands run concurrently (a slow call must not block set-handler), but end of input
        // waits for the ones still running.
        const running = (async () => {
            try {
                await onCommand(command);
            } catch (err) {
                emit('command_error', { ref: command.ref, command: command.command, error: String(err?.stack ?? err) });
            }
        })();
        pending.add(running);
        running.finally(() => pending.delete(running));
    });
    rl.on('close', async () => {
        await Promise.allSettled([...pending]);
        await onEnd();
    });
}

function argValue(name, fallback) {
    const i = process.argv.indexOf(name);
    return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function validator() {
    return createValidator(PROTOCOL, require('ocpp-rpc/lib/schemas/ocpp2_0_1.json'));
}

// ocpp-rpc 2.2.1's strict mode looks schemas up as `urn:<Action>.req` / `.conf`, but the OCPP 2.1
// schema set it ships (lib/schemas/ocpp2_1.json) names them `urn:<Action>Request` /
// `urn:<Action>Response` (and `urn:NotifyPeriodicEventStream` for the SEND): its built-in 2.1
// validator refuses every message ("Schema ... is missing"). This validator uses the same shipped
// 2.1 schemas through ocpp-rpc's own createValidator and only maps the ids.
function validator21() {
    const v = createValidator(PROTOCOL_21, require('ocpp-rpc/lib/schemas/ocpp2_1.json'));
    const validate = v.validate.bind(v);
    v.validate = (schemaId, params) => validate(
        schemaId.replace(/\.req$/, 'Request').replace(/\.conf$/, 'Response'), params,
    );
    return v;
}

// The strict-mode validator this harness runs with: ocpp-rpc's own 2.0.1 (or 2.1) validator,
// except that a test may ask for ONE outbound request to go out unchecked (`skipNext(action)`),
// to see how the system under test answers a malformed CALL. Everything else is validated.
function skippableValidator(protocol = PROTOCOL) {
    const v = protocol === PROTOCOL_21 ? validator21() : validator();
    const skips = new Map(); // schema id -> how many validations to skip
    const validate = v.validate.bind(v);
    v.validate = (schemaId, params) => {
        const left = skips.get(schemaId) ?? 0;
        if (left > 0) {
            if (left === 1) skips.delete(schemaId); else skips.set(schemaId, left - 1);
            return true;
        }
        return validate(schemaId, params);
    };
    return {
        validator: v,
        skipNext(action) {
            const id = `urn:${action}.req`;
            skips.set(id, (skips.get(id) ?? 0) + 1);
        },
    };
}

// --self-check: every action of one direction has a default answer, and each answer for a
// representative request is valid against ocpp-rpc's own 2.0.1 schema.
function selfCheck(actions, defaults, sampleRequests, actions21 = []) {
    const v = validator();
    const schemaActions = require('ocpp-rpc/lib/schemas/ocpp2_0_1.json')
        .map((s) => s.$id)
        .filter((id) => id.endsWith('.req'))
        .map((id) => id.slice('urn:'.length, -'.req'.length));
    const problems = [];
    const union = new Set([...CS_TO_CSMS, ...CSMS_TO_CS]);
    for (const a of schemaActions) {
        if (!union.has(a)) problems.push(`${a}: in the schema but in neither direction list`);
    }
    for (const a of union) {
        if (!schemaActions.includes(a)) problems.push(`${a}: not an OCPP 2.0.1 action`);
    }
    for (const action of actions) {
        if (typeof defaults[action] !== 'function') {
            problems.push(`${action}: no default answer`);
            continue;
        }
        // Answers that depend on the request are checked against a valid sample request.
        const request = sampleRequests[action] ?? {};
        if (action in sampleRequests) {
            try {
                v.validate(`urn:${action}.req`, request);
            } catch (err) {
                problems.push(`${action}: sample request invalid: ${err.message}`);
            }
        }
        try {
            v.validate(`urn:${action}.conf`, defaults[action](request));
        } catch (err) {
            problems.push(`${action}: default answer invalid: ${err.message}`);
        }
    }
    // The 2.1 additions (client.js): each has a default answer valid against the 2.1 schemas.
    const v21 = validator21();
    for (const action of actions21) {
        if (typeof defaults[action] !== 'function') {
            problems.push(`${action}: no default answer (2.1)`);
            continue;
        }
        const request = sampleRequests[action] ?? {};
        try {
            if (action in sampleRequests) v21.validate(`urn:${action}.req`, request);
            v21.validate(`urn:${action}.conf`, defaults[action](request));
        } catch (err) {
            problems.push(`${action}: 2.1 default answer or sample invalid: ${err.message}`);
        }
    }
    emit('self_check', { actions: actions.length + actions21.length, problems });
    process.exitCode = problems.length ? 1 : 0;
}

module.exports = {
    PROTOCOL,
    PROTOCOL_21,
    CS_TO_CSMS_21_ADDED,
    CSMS_TO_CS_21_ADDED,
    SENDS_21,
    validator21,
    CS_TO_CSMS,
    CSMS_TO_CS,
    emit,
    nowIso,
    errorFields,
    instrument,
    answerFromOverride,
    readCommands,
    argValue,
    selfCheck,
    skippableValidator,
};
