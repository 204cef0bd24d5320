// curvebus.js in Node straight over TCP to real libzmq 4.3 peers: the
// curvebus-broker (the scenarios of bus_scenarios.mjs, with the C++ CLI on
// the other end), a libzmq CURVE client whose handshake bytes are compared
// with ours, and a libzmq ROUTER with ZMTP heartbeats on (PING/PONG, multi-part
// messages, long frames).

import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadLibrary, libModule, start, waitFor, sleep } from './helpers.mjs';
import { busScenarios } from './bus_scenarios.mjs';

const { cb, nacl } = await loadLibrary();
const { tcpTransport } = await libModule('node-tcp.js');
const { ZmtpCurveConnection } = await libModule('lib/connection.js');
const z = await libModule('lib/zmtp.js');
const PEER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'zmq_peer.py');
const PYTHON = '/usr/bin/python3'; // Debian's, with python3-zmq

busScenarios({
  name: 'tcp',
  start: async () => {},
  transport: (env) => tcpTransport(env.endpoint),
});

// Listens on 127.0.0.1, plays the broker's greeting to whoever connects and
// records the bytes it receives.  -> { endpoint, received(), close() }
async function recorder() {
  const chunks = [];
  const server = net.createServer((s) => {
    const g = z.makeGreeting({ mechanism: 'CURVE', minor: 1 });
    g[8] = 1; // as libzmq pads it
    s.write(g);
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `tcp://127.0.0.1:${server.address().port}`,
    received: () => new Uint8Array(Buffer.concat(chunks)),
    close: () => new Promise((r) => server.close(r)),
  };
}

test('[tcp] our greeting and HELLO are byte for byte what a libzmq 4.3 CURVE client sends (but keys and box)', async () => {
  const serverKeys = nacl.box.keyPair();
  const serverZ85 = cb.z85encode(serverKeys.publicKey);

  const theirs = await recorder();
  const peer = start(PYTHON, [PEER, 'dealer', theirs.endpoint, serverZ85, '1']);
  assert.ok(await waitFor(() => theirs.received().length >= 64 + 202, 5000), `libzmq sent ${theirs.received().length} bytes`);
  await peer.stop();

  const ours = await recorder();
  const user = nacl.box.keyPair();
  const conn = new ZmtpCurveConnection({
    transport: tcpTransport(ours.endpoint),
    serverKey: serverKeys.publicKey,
    publicKey: user.publicKey,
    secretKey: user.secretKey,
  });
  assert.ok(await waitFor(() => ours.received().length >= 64 + 202, 5000));
  conn.close();

  const a = theirs.received();
  const b = ours.received();
  // Greeting: identical except the padding (libzmq puts routing-id size + 1 there; "not significant").
  const gA = a.slice(0, 64);
  const gB = b.slice(0, 64);
  gA.fill(0, 1, 9);
  gB.fill(0, 1, 9);
  assert.deepEqual(gB, gA, 'greeting');
  // HELLO frame: command flag, short size 200, "HELLO", version, padding, then
  // C' (random), short nonce 1, box (random): compare all but the random parts.
  const hA = a.slice(64, 64 + 202);
  const hB = b.slice(64, 64 + 202);
  assert.deepEqual(hB.subarray(0, 82), hA.subarray(0, 82), 'HELLO head');
  assert.deepEqual(hB.subarray(114, 122), hA.subarray(114, 122), 'HELLO short nonce');
  assert.deepEqual(Array.from(hA.subarray(114, 122)), [0, 0, 0, 0, 0, 0, 0, 1]);
  assert.equal(a.length, 64 + 202, 'libzmq sends nothing more before WELCOME');
  assert.equal(b.length, 64 + 202, 'nor do we');
  await theirs.close();
  await ours.close();
});

test('[tcp] against a libzmq ROUTER with heartbeats on, PINGs are answered and multi-part messages echo back intact', async () => {
  const serverKeys = nacl.box.keyPair();
  const peer = start(PYTHON, [PEER, 'echo', cb.z85encode(serverKeys.secretKey), '20']);
  try {
    assert.ok(await waitFor(() => /endpoint (\S+)/.test(peer.output()), 5000), peer.output());
    const endpoint = /endpoint (\S+)/.exec(peer.output())[1];
    const user = nacl.box.keyPair();
    let framesSent = 0;
    const base = tcpTransport(endpoint);
    const counting = (onBytes, onClose, onOpen) => {
      const t = base(onBytes, onClose, onOpen);
      return { ...t, send: (bytes) => (++framesSent, t.send(bytes)) };
    };
    const got = [];
    const closes = [];
    let ready = false;
    const conn = new ZmtpCurveConnection({
      transport: counting,
      serverKey: serverKeys.publicKey,
      publicKey: user.publicKey,
      secretKey: user.secretKey,
      onReady: () => (ready = true),
      onMessage: (parts) => got.push(parts),
      onClose: (info) => closes.push(info),
    });
    assert.ok(await waitFor(() => ready, 5000));
    const afterHandshake = framesSent;
    // Idle for 2.5 s: libzmq PINGs every 100 ms and drops us after 1 s without traffic,
    // so only our PONGs keep the connection.
    await sleep(2500);
    assert.deepEqual(closes, []);
    assert.ok(framesSent - afterHandshake >= 5, `PONGs sent: ${framesSent - afterHandshake}`);
    assert.doesNotMatch(peer.output(), /disconnected/);
    const parts = [Uint8Array.from([1, 2, 3]), nacl.randomBytes(300), new Uint8Array(0), nacl.randomBytes(70000)];
    conn.send(...parts);
    assert.ok(await waitFor(() => got.length === 1, 5000));
    assert.deepEqual(got[0], parts);
    assert.ok(await waitFor(() => /echo 4\n/.test(peer.output()), 5000), peer.output()); // printed after it echoed
    conn.close();
    assert.ok(await waitFor(() => /disconnected/.test(peer.output()), 5000), 'libzmq sees our close');

    // Control: the same with every frame after the handshake swallowed (no PONG):
    // libzmq's heartbeat timeout drops the connection.
    let mute = false;
    const muted = (onBytes, onClose, onOpen) => {
      const t = base(onBytes, onClose, onOpen);
      return { ...t, send: (bytes) => (mute ? undefined : t.send(bytes)) };
    };
    const lost = [];
    let ready2 = false;
    const quiet = new ZmtpCurveConnection({
      transport: muted,
      serverKey: serverKeys.publicKey,
      publicKey: user.publicKey,
      secretKey: user.secretKey,
      onReady: () => ((ready2 = true), (mute = true)),
      onClose: (info) => lost.push(info.kind),
    });
    assert.ok(await waitFor(() => ready2, 5000));
    assert.ok(await waitFor(() => lost.length === 1, 6000), 'a peer that does not answer PING is dropped');
    assert.deepEqual(lost, ['lost']);
    quiet.close();
  } finally {
    await peer.stop();
  }
});
