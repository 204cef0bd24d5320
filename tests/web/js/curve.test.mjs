// The CURVE client state machine (web/static/lib/curve.js) against a test
// CurveZMQ server: the RFC 26 layouts, the nonces, and every refusal.

import test from 'node:test';
import assert from 'node:assert/strict';
import { loadLibrary, libModule } from './helpers.mjs';
import { TestCurveServer, concat, u64 } from './curve_server.mjs';

const { nacl } = await loadLibrary();
const { CurveClient, CurveError } = await libModule('lib/curve.js');
const z = await libModule('lib/zmtp.js');
const ascii = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));

function pair() {
  const server = new TestCurveServer();
  const user = nacl.box.keyPair();
  const client = new CurveClient({
    serverKey: server.keys.publicKey,
    publicKey: user.publicKey,
    secretKey: user.secretKey,
    metadata: [['Socket-Type', 'DEALER']],
  });
  return { server, user, client };
}

function handshake() {
  const p = pair();
  const initiate = p.client.welcome(p.server.welcome(p.client.hello()));
  const got = p.server.initiate(initiate);
  const meta = p.client.ready(got.ready);
  return { ...p, initiate, got, meta };
}

const curveKind = (kind) => (e) => e instanceof CurveError && e.kind === kind;

test('HELLO is the 200 bytes of RFC 26: version 1.0, 72 zero bytes, C\', short nonce 1, the 80-byte signature box', () => {
  const { client, server } = pair();
  const hello = client.hello();
  assert.equal(hello.length, 200);
  assert.deepEqual(hello.subarray(0, 8), Uint8Array.of(5, ...ascii('HELLO'), 1, 0));
  assert.ok(hello.subarray(8, 80).every((b) => b === 0));
  assert.deepEqual(hello.subarray(80, 112), client.transient.publicKey);
  assert.deepEqual(hello.subarray(112, 120), u64(1));
  server.welcome(hello); // opens the box to 64 zeros with S and C', or throws
});

test('the handshake completes: INITIATE carries C, a vouch of C\' and S, and Socket-Type DEALER with no Identity', () => {
  const { user, server, client, initiate, got, meta } = handshake();
  assert.deepEqual(got.clientKey, user.publicKey);
  assert.deepEqual(server.vouch, concat(client.transient.publicKey, server.keys.publicKey));
  assert.deepEqual([...got.metadata.keys()], ['socket-type']);
  assert.deepEqual(got.metadata.get('socket-type'), ascii('DEALER'));
  assert.equal(server.initiateNonce, 2n, 'INITIATE uses the short nonce after HELLO');
  // 9 name + 96 cookie + 8 nonce + box(32 C + 16 vouch nonce + 80 vouch + 22 metadata)
  assert.equal(initiate.length, 9 + 96 + 8 + 16 + 32 + 16 + 80 + 22);
  assert.equal(client.state, 'traffic');
  assert.deepEqual(meta.get('socket-type'), ascii('ROUTER'));
});

test('MESSAGE boxes go both ways, with client nonces 3, 4, 5... and the MORE and command flags', () => {
  const { server, client } = handshake();
  const a = server.open(client.seal(ascii('one'), { more: true }));
  assert.deepEqual([a.n, a.more, a.command, Buffer.from(a.data).toString()], [3n, true, false, 'one']);
  const b = server.open(client.seal(new Uint8Array(0)));
  assert.deepEqual([b.n, b.more, b.data.length], [4n, false, 0]);
  const c = server.open(client.seal(z.commandBody('PONG'), { command: true }));
  assert.deepEqual([c.n, c.command], [5n, true]);
  const m = client.open(server.seal(ascii('from broker'), { more: true }));
  assert.deepEqual([Buffer.from(m.data).toString(), m.more, m.command], ['from broker', true, false]);
  const big = nacl.randomBytes(100000);
  assert.deepEqual(client.open(server.seal(big)).data, big);
});

test('a WELCOME that does not open with the pinned key is a server-key mismatch', () => {
  const { client } = pair();
  client.hello();
  const impostor = new TestCurveServer(); // holds another key than the pinned one
  assert.throws(() => client.welcome(impostor.welcomeTo(client.transient.publicKey)), curveKind('server-key'));
  assert.equal(client.state, 'failed');
});

test('wrong or malformed commands in the handshake are refused and fail the machine', () => {
  let { client, server } = pair();
  const hello = client.hello();
  const welcome = server.welcome(hello);
  assert.throws(() => client.welcome(z.commandBody('READY', new Uint8Array(160))), curveKind('protocol'));
  assert.throws(() => client.welcome(welcome), curveKind('state'), 'nothing is accepted after a failure');

  ({ client, server } = pair());
  client.hello();
  assert.throws(() => client.welcome(z.commandBody('WELCOME', new Uint8Array(100))), /168 expected/);

  ({ client, server } = pair());
  const w2 = server.welcome(client.hello());
  const truncated = w2.subarray(0, 5);
  assert.throws(() => client.welcome(truncated), curveKind('protocol'));

  ({ client, server } = pair());
  const i3 = client.welcome(server.welcome(client.hello()));
  const r3 = server.initiate(i3).ready.slice();
  r3[r3.length - 1] ^= 1;
  assert.throws(() => client.ready(r3), curveKind('box'));

  ({ client, server } = pair());
  assert.throws(() => client.ready(z.commandBody('READY')), curveKind('state'), 'READY before HELLO');
  assert.throws(() => pair().client.seal(ascii('x')), curveKind('state'), 'MESSAGE before READY');
});

test('a replayed MESSAGE is refused (nonce not above the last one)', () => {
  const { server, client } = handshake();
  const m = server.seal(ascii('once'));
  client.open(m);
  assert.throws(() => client.open(m), curveKind('nonce'));
  assert.equal(client.state, 'failed');
});

test('an out-of-order MESSAGE is refused, and so is one with the READY nonce', () => {
  let { server, client } = handshake();
  const first = server.seal(ascii('1'));
  const second = server.seal(ascii('2'));
  client.open(second);
  assert.throws(() => client.open(first), curveKind('nonce'));

  ({ server, client } = handshake());
  assert.throws(() => client.open(server.seal(ascii('x'), { n: 1 })), curveKind('nonce'), 'READY used nonce 1');
});

test('a MESSAGE that does not open is refused: altered box, altered nonce, or boxed by someone else', () => {
  let { server, client } = handshake();
  const m = server.seal(ascii('payload')).slice();
  m[m.length - 3] ^= 0x40;
  assert.throws(() => client.open(m), curveKind('box'));

  ({ server, client } = handshake());
  const m2 = server.seal(ascii('payload')).slice();
  m2[15] += 1; // another nonce than the box was made with
  assert.throws(() => client.open(m2), curveKind('box'));

  ({ server, client } = handshake());
  const other = handshake().server.seal(ascii('payload'));
  assert.throws(() => client.open(other), curveKind('box'));
});

test('a malformed MESSAGE is refused: too short, wrong name, reserved flag bits', () => {
  let { server, client } = handshake();
  assert.throws(() => client.open(server.seal(ascii('x')).subarray(0, 32)), curveKind('protocol'));
  ({ server, client } = handshake());
  const renamed = server.seal(ascii('x')).slice();
  renamed[1] = 'N'.charCodeAt(0);
  assert.throws(() => client.open(renamed), curveKind('protocol'));
  ({ server, client } = handshake());
  const flags = (() => {
    const tail = u64(server.nonce++);
    const box = nacl.box.after(Uint8Array.of(0x80, 1), concat(ascii('CurveZMQMESSAGES'), tail), server.shared);
    return concat(Uint8Array.of(7), ascii('MESSAGE'), tail, box);
  })();
  assert.throws(() => client.open(flags), /reserved MESSAGE flag/);
});

test('CurveClient refuses keys that are not 32 bytes', () => {
  const k = nacl.box.keyPair();
  assert.throws(() => new CurveClient({ serverKey: new Uint8Array(31), publicKey: k.publicKey, secretKey: k.secretKey }), /32 bytes/);
});
