#!/usr/bin/env node
'use strict';
// A third-party OCPP 2.0.1 CSMS: ocpp-rpc's RPCServer in strict mode on 127.0.0.1, driven by
// JSON lines on stdin, reporting every event as a JSON line on stdout. See README.md.
//
//   node server.js [--port 0] [--password SECRET] [--heartbeat-interval 300]
//                  [--boot-status Accepted|Pending|Rejected] [--protocols ocpp2.1,ocpp2.0.1]
//                  [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
//   With --tls-cert/--tls-key it listens on wss (security profile 2); with --tls-client-ca too,
//   it requires a client certificate issued by that CA (profile 3).
//   node server.js --self-check

const { RPCServer } = require('ocpp-rpc');
const {
    PROTOCOL, CS_TO_CSMS, emit, nowIso, errorFields, instrument, answerFromOverride, readCommands,
    argValue, selfCheck, skippableValidator,
} = require('./common');
const { PROTOCOL_21, validator21, CS_TO_CSMS_21_DEFAULTS, selfCheck21 } = require('./v21');

const port = Number(argValue('--port', '0'));
const password = argValue('--password', null);
const heartbeatInterval = Number(argValue('--heartbeat-interval', '300'));
const bootStatus = argValue('--boot-status', 'Accepted');
const tlsCert = argValue('--tls-cert', null);
const tlsKey = argValue('--tls-key', null);
const tlsClientCa = argValue('--tls-client-ca', null);
// Subprotocols this CSMS speaks, preferred first (the first one the station offers is chosen).
const protocols = argValue('--protocols', PROTOCOL).split(',').filter(Boolean);
let tlsServer = null; // the https server when TLS is on (ocpp-rpc's listen() is plain http)

const empty = () => ({});

// Default answer for every station-initiated 2.0.1 action (request params -> response payload).
const DEFAULTS = {
    Authorize: () => ({ idTokenInfo: { status: 'Accepted' } }),
    BootNotification: () => ({ currentTime: nowIso(), interval: heartbeatInterval, status: bootStatus }),
    ClearedChargingLimit: empty,
    DataTransfer: () => ({ status: 'UnknownVendorId' }),
    FirmwareStatusNotification: empty,
    Get15118EVCertificate: () => ({ status: 'Failed', exiResponse: '' }),
    GetCertificateStatus: () => ({ status: 'Failed' }),
    Heartbeat: () => ({ currentTime: nowIso() }),
    LogStatusNotification: empty,
    MeterValues: empty,
    NotifyChargingLimit: empty,
    NotifyCustomerInformation: empty,
    NotifyDisplayMessages: empty,
    NotifyEVChargingNeeds: () => ({ status: 'Accepted' }),
    NotifyEVChargingSchedule: () => ({ status: 'Accepted' }),
    NotifyEvent: empty,
    NotifyMonitoringReport: empty,
    NotifyReport: empty,
    PublishFirmwareStatusNotification: empty,
    ReportChargingProfiles: empty,
    ReservationStatusUpdate: empty,
    SecurityEventNotification: empty,
    SignCertificate: () => ({ status: 'Accepted' }),
    StatusNotification: empty,
    // A TransactionEvent carrying an idToken gets it authorised, as a CSMS would.
    TransactionEvent: (p) => (p.idToken ? { idTokenInfo: { status: 'Accepted' } } : {}),
};

const SAMPLE_REQUESTS = {
    TransactionEvent: {
        eventType: 'Started',
        timestamp: '2026-01-01T00:00:00Z',
        triggerReason: 'Authorized',
        seqNo: 0,
        transactionInfo: { transactionId: 'tx-1' },
        idToken: { idToken: 'TAG1', type: 'ISO14443' },
    },
};

const stations = new Map(); // identity -> RPCServerClient
const overrides = new Map(); // action -> {response} | {error}

// Lets one outbound CALL skip strict validation (`"unvalidated": true` on a call command).
const skipper = skippableValidator();
const server = new RPCServer({
    protocols, strictMode: true, strictModeValidators: [skipper.validator, validator21()],
});
// 2.1 stations get the 2.1 answers where they differ (and to the actions new in 2.1).
const DEFAULTS_21 = { ...DEFAULTS, ...CS_TO_CSMS_21_DEFAULTS };

server.auth((accept, reject, handshake) => {
    // ocpp-rpc would accept a client with no common subprotocol (and then run without one);
    // OCPP-J says the upgrade must then fail, so this harness refuses it.
    if (!protocols.some((p) => handshake.protocols.has(p))) {
        emit('subprotocol_rejected', { identity: handshake.identity, offered: [...handshake.protocols] });
        reject(400, `subprotocol ${protocols.join(' or ')} required`);
        return;
    }
    if (password !== null) {
        const given = handshake.password ? handshake.password.toString('utf8') : null;
        if (given !== password) {
            emit('auth_rejected', { identity: handshake.identity, had_password: given !== null });
            reject(401, 'bad credentials');
            return;
        }
    }
    // Profile 3: the client certificate's subject CN (null without TLS or certificate).
    const peer = handshake.request?.socket?.getPeerCertificate?.();
    const clientCn = peer && peer.subject ? peer.subject.CN ?? null : null;
    accept({ identity: handshake.identity, endpoint: handshake.endpoint, clientCn });
});

server.on('client', (client) => {
    const identity = client.identity;
    const previous = stations.get(identity);
    stations.set(identity, client);
    if (previous) previous.close({ code: 1000, reason: 'replaced by a new connection' });
    instrument(client, identity);
    client.handle(({ method, params }) => {
        const override = overrides.get(method);
        if (override) return answerFromOverride(override);
        const defaults = client.protocol === PROTOCOL_21 ? DEFAULTS_21 : DEFAULTS;
        return defaults[method](params ?? {});
    });
    client.on('close', ({ code, reason }) => {
        if (stations.get(identity) === client) stations.delete(identity);
        emit('station_disconnected', { identity, code, reason: String(reason ?? '') });
    });
    emit('station_connected', {
        identity,
        protocol: client.protocol,
        endpoint: client.session?.endpoint,
        had_password: Boolean(client.handshake?.password),
        tls: tlsServer !== null,
        client_cn: client.session?.clientCn ?? null,
    });
});

async function onCommand(command) {
    switch (command.command) {
        case 'call': {
            const station = stations.get(command.identity);
            if (!station) {
                emit('call_error', {
                    ref: command.ref, identity: command.identity, action: command.action,
                    code: 'NotConnected', description: `${command.identity} is not connected`, details: {},
                });
                return;
            }
            // `unvalidated`: send this one CALL as given even if it breaks the schema (the
            // answer is still validated), to test how the peer treats a malformed CALL.
            if (command.unvalidated) skipper.skipNext(command.action);
            try {
                const options = command.timeout_ms ? { callTimeoutMs: command.timeout_ms } : {};
                const result = await station.call(command.action, command.payload ?? {}, options);
                emit('call_result', { ref: command.ref, identity: command.identity, action: command.action, payload: result });
            } catch (err) {
                emit('call_error', { ref: command.ref, identity: command.identity, action: command.action, ...errorFields(err) });
            }
            break;
        }
        case 'ping':
            // Events are printed in order: once "pong" is read, everything before it is too.
            emit('pong', { ref: command.ref });
            break;
        case 'set-handler':
            if (command.default) overrides.delete(command.action);
            else overrides.set(command.action, { response: command.response, error: command.error, delayMs: command.delay_ms });
            emit('handler_set', { ref: command.ref, action: command.action });
            break;
        case 'disconnect': {
            const station = stations.get(command.identity);
            if (station) await station.close({ code: command.code ?? 1000, reason: command.reason ?? '' });
            emit('disconnect_done', { ref: command.ref, identity: command.identity, was_connected: Boolean(station) });
            break;
        }
        case 'close':
            await shutdown();
            emit('closed', { ref: command.ref });
            process.exit(0);
            break;
        default:
            emit('command_error', { ref: command.ref, command: command.command, error: 'unknown command' });
    }
}

async function shutdown() {
    await server.close({ code: 1001, reason: 'server shutting down', awaitPending: false });
    if (tlsServer) {
        await new Promise((resolve) => tlsServer.close(resolve));
        tlsServer = null;
    }
}

// wss on 127.0.0.1: ocpp-rpc's upgrade handler on a Node https server.
async function listenTls() {
    const fs = require('node:fs');
    const https = require('node:https');
    const options = { cert: fs.readFileSync(tlsCert), key: fs.readFileSync(tlsKey) };
    if (tlsClientCa) {
        Object.assign(options, { ca: fs.readFileSync(tlsClientCa), requestCert: true, rejectUnauthorized: true });
    }
    tlsServer = https.createServer(options, (req, res) => {
        res.statusCode = 404;
        res.end();
    });
    tlsServer.on('upgrade', server.handleUpgrade);
    tlsServer.on('tlsClientError', (err) => emit('tls_client_error', { error: String(err?.message ?? err) }));
    await new Promise((resolve, reject) => {
        tlsServer.once('error', reject);
        tlsServer.listen({ port, host: '127.0.0.1' }, resolve);
    });
    return tlsServer;
}

async function main() {
    // Loopback only: this harness never listens on a public interface.
    const httpServer = tlsCert && tlsKey ? await listenTls() : await server.listen(port, '127.0.0.1');
    readCommands(onCommand, async () => {
        await shutdown();
        process.exit(0);
    });
    emit('listening', {
        role: 'csms', pid: process.pid, host: '127.0.0.1', port: httpServer.address().port,
        protocol: protocols[0], protocols, auth: password !== null, tls: tlsServer !== null, client_ca: Boolean(tlsClientCa),
    });
}

if (process.argv.includes('--self-check-21')) {
    const { actions, problems } = selfCheck21(DEFAULTS_21, SAMPLE_REQUESTS);
    emit('self_check', { actions, problems, protocol: PROTOCOL_21 });
    process.exitCode = problems.length ? 1 : 0;
} else if (process.argv.includes('--self-check')) {
    selfCheck(CS_TO_CSMS, DEFAULTS, SAMPLE_REQUESTS);
} else {
    main().catch((err) => {
        emit('fatal', { error: String(err?.stack ?? err) });
        process.exit(2);
    });
}
