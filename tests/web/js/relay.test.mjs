// curvebus.js in Node through the curvebus-web relay: a WebSocket (Node's
// global WebSocket, the browser's API) to /bus, relayed byte for byte to the
// real broker.  The same scenarios as straight over TCP (bus_scenarios.mjs),
// plus what only the relay path has: /config.json and /proto/ as the page
// uses them, and the ZMTP stream cut into arbitrary WebSocket messages.

import test from 'node:test';
import assert from 'node:assert/strict';
import { loadLibrary, bin, start, waitFor, protocolText } from './helpers.mjs';
import { busScenarios } from './bus_scenarios.mjs';

const { cb, nacl } = await loadLibrary();
if (typeof globalThis.WebSocket !== 'function')
  throw new Error('no global WebSocket: run node with --experimental-websocket (Node 20)');

let relay = null;
let base = ''; // http://127.0.0.1:PORT/

async function startRelay(env) {
  relay = start(bin('CURVEBUS_WEB_BIN'), [
    '--listen', '127.0.0.1:0',
    '--broker', env.endpoint,
    '--server-key', env.server.publicKey,
    '--log-level', 'debug',
  ]);
  const found = await waitFor(() => /listening on (http:\/\/\S+\/)/.test(relay.output()), 10000);
  if (!found) throw new Error(`curvebus-web did not start: ${relay.output()}`);
  base = /listening on (http:\/\/\S+\/)/.exec(relay.output())[1];
}

const wsUrl = () => base.replace(/^http/, 'ws') + 'bus';

// Splits everything the client sends into WebSocket messages of 1..`max` bytes.
function choppy(inner, max) {
  return (onBytes, onClose, onOpen) => {
    const t = inner(onBytes, onClose, onOpen);
    return {
      ...t,
      send(bytes) {
        for (let at = 0; at < bytes.length; ) {
          const n = 1 + Math.floor(Math.random() * max);
          t.send(bytes.subarray(at, at + n));
          at += n;
        }
      },
    };
  };
}

let sharedEnv = null;
busScenarios({
  name: 'relay',
  start: async (env) => {
    sharedEnv = env;
    await startRelay(env);
  },
  stop: async () => {
    if (relay) await relay.stop();
  },
  transport: () => cb.webSocketTransport(wsUrl()),
});

test('[relay] the page\'s way in: /config.json pins the broker key, /proto/ gives the protocol, /bus connects', async () => {
  const config = await (await fetch(base + 'config.json')).json();
  assert.equal(config.brokerKey, sharedEnv.server.publicKey);
  const protocol = await cb.loadProtocol({ base: base + 'proto/' });
  const [bus] = protocolText();
  assert.ok(bus.includes('message Frame'), 'sanity');
  assert.ok(protocol.Frame && protocol.RobotCommand);
  const url = new URL(config.relayPath || '/bus', base).href.replace(/^http/, 'ws');
  const c = new cb.Client({ url, serverKey: config.brokerKey, ...sharedEnv.web, protocol, heartbeatMs: 200 });
  const reg = await c.connect({ timeoutMs: 10000 });
  assert.equal(reg.name, 'web');
  assert.equal((await c.publish('web/config', 'ok')).seq >= 1, true);
  c.close();
});

test('[relay] a ZMTP stream cut into WebSocket messages of 1 to 7 bytes still handshakes, publishes and delivers', async () => {
  const c = new cb.Client({
    transport: choppy(cb.webSocketTransport(wsUrl()), 7),
    serverKey: sharedEnv.server.publicKey,
    ...sharedEnv.web,
    protocol: cb.protocolFromText(...protocolText()),
    heartbeatMs: 200,
  });
  await c.connect({ timeoutMs: 15000 });
  const got = [];
  await c.subscribe('web/choppy', (m) => got.push(m.payload));
  const big = nacl.randomBytes(3000);
  const ack = await c.publish('web/choppy', big, { ack: true, timeoutMs: 15000 });
  assert.equal(ack.delivered, 1);
  assert.ok(await waitFor(() => got.length === 1, 10000));
  assert.deepEqual(new Uint8Array(got[0]), big);
  c.close();
});
