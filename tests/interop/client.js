#!/usr/bin/env node
'use strict';
// A third-party OCPP 2.0.1 / 2.1 charging station: ocpp-rpc's RPCClient in strict mode, driven by
// JSON lines on stdin, reporting every event as a JSON line on stdout. See README.md for the
// protocol. `connect` takes `protocols` (e.g. ["ocpp2.1", "ocpp2.0.1"]); `send` sends an OCPP-J
// 2.1 SEND (message type 6: ocpp-rpc 2.2.1 has no API for it, so the frame goes out raw after the
// payload is checked against the shipped 2.1 schema).
//
//   node client.js               run (reads commands from stdin)
//   node client.js --self-check  check that every default answer is schema-valid, then exit

const { RPCClient } = require('ocpp-rpc');
const {
    PROTOCOL, PROTOCOL_21, CSMS_TO_CS, CSMS_TO_CS_21_ADDED, SENDS_21, emit, nowIso, errorFields,
    instrument, answerFromOverride, readCommands, selfCheck, skippableValidator,
} = require('./common');

// A small device model so that GetVariables / SetVariables / GetBaseReport answer like a station.
// Key: "<component>/<variable>"; instance, evse and attribute type are not modelled.
function initialDeviceModel(identity) {
    return new Map([
        ['OCPPCommCtrlr/HeartbeatInterval', { value: '300', dataType: 'integer' }],
        ['OCPPCommCtrlr/MessageTimeout', { value: '30', dataType: 'integer' }],
        ['SecurityCtrlr/Identity', { value: identity ?? 'CS', dataType: 'string' }],
        ['SecurityCtrlr/SecurityProfile', { value: '1', dataType: 'integer' }],
        ['SmartChargingCtrlr/Enabled', { value: 'true', dataType: 'boolean' }],
        ['SmartChargingCtrlr/RateUnit', { value: 'A,W', dataType: 'MemberList' }],
        ['SmartChargingCtrlr/PeriodsPerSchedule', { value: '1024', dataType: 'integer' }],
        ['SmartChargingCtrlr/ProfileStackLevel', { value: '8', dataType: 'integer' }],
        ['DeviceDataCtrlr/ItemsPerMessage', { value: '50', dataType: 'integer' }],
        ['ChargingStation/Available', { value: 'true', dataType: 'boolean' }],
    ]);
}

let deviceModel = initialDeviceModel(null);
const knownComponents = () => new Set([...deviceModel.keys()].map((k) => k.split('/')[0]));

function lookup(component, variable) {
    const entry = deviceModel.get(`${component?.name}/${variable?.name}`);
    if (entry) return { status: 'Accepted', entry };
    return { status: knownComponents().has(component?.name) ? 'UnknownVariable' : 'UnknownComponent' };
}

const accepted = () => ({ status: 'Accepted' });

// Default answer for every CSMS-initiated 2.0.1 action (request params -> response payload).
const DEFAULTS = {
    CancelReservation: accepted,
    CertificateSigned: accepted,
    ChangeAvailability: accepted,
    ClearCache: accepted,
    ClearChargingProfile: accepted,
    ClearDisplayMessage: accepted,
    ClearVariableMonitoring: (p) => ({
        clearMonitoringResult: (p.id ?? [0]).map((id) => ({ status: 'Accepted', id })),
    }),
    CostUpdated: () => ({}),
    CustomerInformation: accepted,
    DataTransfer: () => ({ status: 'UnknownVendorId' }),
    DeleteCertificate: accepted,
    GetBaseReport: accepted,
    GetChargingProfiles: () => ({ status: 'NoProfiles' }),
    GetCompositeSchedule: (p) => ({
        status: 'Accepted',
        schedule: {
            evseId: p.evseId ?? 0,
            duration: p.duration ?? 0,
            scheduleStart: nowIso(),
            chargingRateUnit: p.chargingRateUnit ?? 'A',
            chargingSchedulePeriod: [{ startPeriod: 0, limit: 32 }],
        },
    }),
    GetDisplayMessages: () => ({ status: 'Unknown' }),
    GetInstalledCertificateIds: () => ({ status: 'NotFound' }),
    GetLocalListVersion: () => ({ versionNumber: 0 }),
    GetLog: () => ({ status: 'Rejected' }),
    GetMonitoringReport: () => ({ status: 'EmptyResultSet' }),
    GetReport: accepted,
    GetTransactionStatus: (p) => (p.transactionId
        ? { messagesInQueue: false, ongoingIndicator: false }
        : { messagesInQueue: false }),
    GetVariables: (p) => ({
        getVariableResult: (p.getVariableData ?? []).map((d) => {
            const found = lookup(d.component, d.variable);
            const result = {
                attributeStatus: found.status,
                component: d.component,
                variable: d.variable,
            };
            if (d.attributeType) result.attributeType = d.attributeType;
            if (found.entry) result.attributeValue = found.entry.value;
            return result;
        }),
    }),
    InstallCertificate: accepted,
    PublishFirmware: accepted,
    RequestStartTransaction: accepted,
    RequestStopTransaction: accepted,
    ReserveNow: accepted,
    Reset: accepted,
    SendLocalList: accepted,
    SetChargingProfile: accepted,
    SetDisplayMessage: accepted,
    SetMonitoringBase: accepted,
    SetMonitoringLevel: accepted,
    SetNetworkProfile: accepted,
    SetVariableMonitoring: (p) => ({
        setMonitoringResult: (p.setMonitoringData ?? []).map((d) => ({
            status: 'Accepted',
            type: d.type,
            severity: d.severity,
            component: d.component,
            variable: d.variable,
        })),
    }),
    SetVariables: (p) => ({
        setVariableResult: (p.setVariableData ?? []).map((d) => {
            const found = lookup(d.component, d.variable);
            if (found.entry) found.entry.value = d.attributeValue;
            const result = { attributeStatus: found.status, component: d.component, variable: d.variable };
            if (d.attributeType) result.attributeType = d.attributeType;
            return result;
        }),
    }),
    TriggerMessage: (p) => ({
        status: ['BootNotification', 'Heartbeat', 'StatusNotification'].includes(p.requestedMessage)
            ? 'Accepted' : 'NotImplemented',
    }),
    UnlockConnector: () => ({ status: 'Unlocked' }),
    UnpublishFirmware: () => ({ status: 'Unpublished' }),
    UpdateFirmware: accepted,
    // OCPP 2.1 additions.
    AFRRSignal: accepted,
    AdjustPeriodicEventStream: accepted,
    ChangeTransactionTariff: accepted,
    ClearDERControl: accepted,
    ClearTariffs: () => ({ clearTariffsResult: [{ status: 'NoTariff' }] }),
    GetDERControl: () => ({ status: 'NotFound' }),
    GetPeriodicEventStream: () => ({}),
    GetTariffs: () => ({ status: 'NoTariff' }),
    NotifyAllowedEnergyTransfer: accepted,
    NotifyWebPaymentStarted: () => ({}),
    RequestBatterySwap: accepted,
    SetDERControl: accepted,
    SetDefaultTariff: accepted,
    UpdateDynamicSchedule: accepted,
    UsePriorityCharging: accepted,
};

const SAMPLE_REQUESTS = {
    ClearVariableMonitoring: { id: [1, 2] },
    GetCompositeSchedule: { duration: 3600, evseId: 1, chargingRateUnit: 'W' },
    GetTransactionStatus: { transactionId: 'tx-1' },
    GetVariables: {
        getVariableData: [
            { component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' } },
            { component: { name: 'OCPPCommCtrlr' }, variable: { name: 'Nope' }, attributeType: 'Target' },
            { component: { name: 'NoSuchCtrlr' }, variable: { name: 'Nope' } },
        ],
    },
    SetVariableMonitoring: {
        setMonitoringData: [{
            value: 1, type: 'Delta', severity: 5,
            component: { name: 'ChargingStation' }, variable: { name: 'Available' },
        }],
    },
    SetVariables: {
        setVariableData: [
            { attributeValue: '60', component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' } },
            { attributeValue: 'x', attributeType: 'Actual', component: { name: 'Foo' }, variable: { name: 'Bar' } },
        ],
    },
    TriggerMessage: { requestedMessage: 'Heartbeat' },
};

// With `remote_transactions` (connect option): a RequestStartTransaction starts a transaction
// (TransactionEvent Started, RemoteStart) and a RequestStopTransaction of one of them ends it
// (TransactionEvent Ended, Remote); a stop for an unknown transaction is Rejected.
let remoteTransactions = false;
const transactions = new Map(); // transactionId -> {seqNo, evseId}
let transactionCount = 0;

function energySample(context, wh) {
    return [{
        timestamp: nowIso(),
        sampledValue: [{ value: wh, measurand: 'Energy.Active.Import.Register', context, unitOfMeasure: { unit: 'Wh' } }],
    }];
}

function transactionFollowUps(action, params) {
    if (action === 'RequestStartTransaction') {
        transactionCount += 1;
        const transactionId = `rtx-${transactionCount}`;
        const evseId = params.evseId ?? 1;
        transactions.set(transactionId, { seqNo: 0, evseId });
        return [['TransactionEvent', {
            eventType: 'Started',
            timestamp: nowIso(),
            triggerReason: 'RemoteStart',
            seqNo: 0,
            transactionInfo: { transactionId, remoteStartId: params.remoteStartId, chargingState: 'Charging' },
            idToken: params.idToken,
            evse: { id: evseId, connectorId: 1 },
            meterValue: energySample('Transaction.Begin', 0),
        }]];
    }
    if (action === 'RequestStopTransaction') {
        const tx = transactions.get(params.transactionId);
        transactions.delete(params.transactionId);
        tx.seqNo += 1;
        return [['TransactionEvent', {
            eventType: 'Ended',
            timestamp: nowIso(),
            triggerReason: 'RemoteStop',
            seqNo: tx.seqNo,
            transactionInfo: { transactionId: params.transactionId, chargingState: 'Idle', stoppedReason: 'Remote' },
            meterValue: energySample('Transaction.End', 1234),
        }]];
    }
    return [];
}

// Messages a real station sends after some answers (TriggerMessage, report requests).
function followUps(action, params, answer) {
    if (answer?.status !== 'Accepted') return [];
    if (remoteTransactions && ['RequestStartTransaction', 'RequestStopTransaction'].includes(action)) {
        return transactionFollowUps(action, params);
    }
    if (action === 'TriggerMessage') {
        switch (params.requestedMessage) {
            case 'Heartbeat':
                return [['Heartbeat', {}]];
            case 'BootNotification':
                return [['BootNotification', {
                    reason: 'Triggered',
                    chargingStation: { model: 'ocpp-rpc-harness', vendorName: 'interop' },
                }]];
            case 'StatusNotification':
                return [['StatusNotification', {
                    timestamp: nowIso(),
                    connectorStatus: 'Available',
                    evseId: params.evse?.id ?? 1,
                    connectorId: params.evse?.connectorId ?? 1,
                }]];
            default:
                return [];
        }
    }
    if (action === 'GetBaseReport' || action === 'GetReport') {
        return [['NotifyReport', {
            requestId: params.requestId,
            generatedAt: nowIso(),
            seqNo: 0,
            tbc: false,
            reportData: [...deviceModel.entries()].map(([key, entry]) => {
                const [component, variable] = key.split('/');
                return {
                    component: { name: component },
                    variable: { name: variable },
                    variableAttribute: [{ type: 'Actual', value: entry.value, mutability: 'ReadWrite' }],
                    variableCharacteristics: { dataType: entry.dataType, supportsMonitoring: false },
                };
            }),
        }]];
    }
    return [];
}

let client = null;
let identity = null;
let skipper = null; // lets one outbound CALL skip strict validation (`"unvalidated": true`)
let skipper21 = null; // the same for an ocpp2.1 connection
let sendFollowUps = true;
const overrides = new Map(); // action -> {response} | {error}

async function callAndReport(action, payload, ref, timeoutMs) {
    try {
        const result = await client.call(action, payload, timeoutMs ? { callTimeoutMs: timeoutMs } : {});
        emit('call_result', { ref, action, payload: result });
    } catch (err) {
        emit('call_error', { ref, action, ...errorFields(err) });
    }
}

function handleCsmsCall({ method, params }) {
    const override = overrides.get(method);
    if (override) return answerFromOverride(override);
    const makeDefault = DEFAULTS[method];
    if (!makeDefault) {
        // Unknown to 2.0.1: strict mode has already refused it before we get here.
        const { createRPCError } = require('ocpp-rpc');
        throw createRPCError('NotImplemented', `no handler for ${method}`);
    }
    let answer = makeDefault(params ?? {});
    if (remoteTransactions && method === 'RequestStopTransaction' && !transactions.has(params?.transactionId)) {
        answer = { status: 'Rejected' };
    }
    if (sendFollowUps) {
        for (const [action, payload] of followUps(method, params ?? {}, answer)) {
            // After our CALLRESULT has gone out: a station answers first, then acts.
            setTimeout(() => callAndReport(action, payload, `follow-up:${method}`), 20);
        }
    }
    return answer;
}

async function connect(command) {
    if (client) {
        emit('command_error', { ref: command.ref, command: 'connect', error: 'already connected' });
        return;
    }
    identity = command.identity;
    deviceModel = initialDeviceModel(identity);
    sendFollowUps = command.follow_ups ?? true;
    remoteTransactions = command.remote_transactions ?? false;
    const options = {
        endpoint: command.url,
        identity,
        protocols: command.protocols ?? [PROTOCOL],
        strictMode: true,
        reconnect: command.reconnect ?? false,
        callTimeoutMs: command.call_timeout_ms ?? 30000,
    };
    skipper = skippableValidator();
    skipper21 = skippableValidator(PROTOCOL_21);
    options.strictModeValidators = [skipper.validator, skipper21.validator];
    if (command.password !== undefined && command.password !== null) options.password = command.password;
    // wss: `tls_ca` (PEM file) to trust the CSMS's certificate; `tls_cert`/`tls_key` for a
    // client certificate (security profile 3).
    if (command.tls_ca || command.tls_cert) {
        const fs = require('node:fs');
        options.wsOpts = {};
        if (command.tls_ca) options.wsOpts.ca = fs.readFileSync(command.tls_ca);
        if (command.tls_cert) options.wsOpts.cert = fs.readFileSync(command.tls_cert);
        if (command.tls_key) options.wsOpts.key = fs.readFileSync(command.tls_key);
    }
    client = new RPCClient(options);
    instrument(client, identity);
    client.handle(handleCsmsCall);
    try {
        await client.connect();
        // Listen only once open, so a refused connection reports connect_failed alone.
        client.on('close', ({ code, reason }) => {
            emit('disconnected', { identity, code, reason: String(reason ?? '') });
        });
        emit('connected', { ref: command.ref, identity, protocol: client.protocol });
    } catch (err) {
        const status = err?.response?.statusCode ?? err?.statusCode;
        emit('connect_failed', { ref: command.ref, identity, error: String(err?.message ?? err), status });
        client = null;
    }
}

async function closeClient(command = {}) {
    if (client) {
        const c = client;
        client = null;
        await c.close({ code: command.code ?? 1000, reason: command.reason ?? '', awaitPending: false });
    }
}

// OCPP-J 2.1 SEND: [6, messageId, action, payload], never answered. Only on an ocpp2.1
// connection and only for a SEND action; the payload must be valid (else a local violation).
let sendCount = 0;
async function sendUnconfirmed(command) {
    const fail = (error) => emit('send_error', { ref: command.ref, action: command.action, error });
    if (!client || client.protocol !== PROTOCOL_21) return fail('not connected over ocpp2.1');
    if (!SENDS_21.includes(command.action)) return fail(`${command.action} is not a SEND`);
    try {
        skipper21.validator.validate(`urn:${command.action}`, command.payload ?? {});
    } catch (err) {
        return fail(`invalid ${command.action}: ${err.message}`);
    }
    sendCount += 1;
    const messageId = `send-${sendCount}`;
    client.sendRaw(JSON.stringify([6, messageId, command.action, command.payload ?? {}]));
    emit('sent', { ref: command.ref, action: command.action, messageId });
}

async function onCommand(command) {
    switch (command.command) {
        case 'connect':
            await connect(command);
            break;
        case 'call':
            if (!client) {
                emit('call_error', { ref: command.ref, action: command.action, code: 'NotConnected', description: 'connect first', details: {} });
                return;
            }
            // `unvalidated`: send this one CALL as given even if it breaks the schema (the
            // answer is still validated), to test how the peer treats a malformed CALL.
            if (command.unvalidated) {
                skipper.skipNext(command.action);
                skipper21.skipNext(command.action);
            }
            await callAndReport(command.action, command.payload ?? {}, command.ref, command.timeout_ms);
            break;
        case 'send':
            await sendUnconfirmed(command);
            break;
        case 'ping':
            // Events are printed in order: once "pong" is read, everything before it is too.
            emit('pong', { ref: command.ref });
            break;
        case 'set-handler':
            if (command.default) overrides.delete(command.action);
            else overrides.set(command.action, { response: command.response, error: command.error, delayMs: command.delay_ms });
            emit('handler_set', { ref: command.ref, action: command.action });
            break;
        case 'disconnect':
            await closeClient(command);
            emit('disconnect_done', { ref: command.ref });
            break;
        case 'close':
            await closeClient(command);
            emit('closed', { ref: command.ref });
            process.exit(0);
            break;
        default:
            emit('command_error', { ref: command.ref, command: command.command, error: 'unknown command' });
    }
}

if (process.argv.includes('--self-check')) {
    selfCheck(CSMS_TO_CS, DEFAULTS, SAMPLE_REQUESTS, CSMS_TO_CS_21_ADDED);
} else {
    readCommands(onCommand, async () => {
        await closeClient();
        process.exit(0);
    });
    emit('ready', { role: 'station', pid: process.pid, protocol: PROTOCOL });
}
