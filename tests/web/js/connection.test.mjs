// A ZMTP + CURVE connection (web/static/lib/connection.js) and the Client's
// reactions to it, against a fake broker on an in-memory transport: bytes cut
// anywhere, ZMTP PING, refusals mapped to the final states, bad input.

import test from 'node:test';
import assert from 'node:assert/strict';
import { loadLibrary, libModule, protocolText, waitFor, sleep } from './helpers.mjs';
import { fakeBroker, concat } from './curve_server.mjs';

const { cb, nacl } = await loadLibrary();
const { ZmtpCurveConnection } = await libModule('lib/connection.js');
const z = await libModule('lib/zmtp.js');
const protocol = cb.protocolFromText(...protocolText());
const ascii = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));

function connect(broker, extra = {}) {
  const user = nacl.box.keyPair();
  const events = { ready: 0, messages: [], closes: [], opens: 0 };
  const conn = new ZmtpCurveConnection({
    transport: broker.transport,
    serverKey: broker.server.keys.publicKey,
    publicKey: user.publicKey,
    secretKey: user.secretKey,
    onOpen: () => ++events.opens,
    onReady: (m) => (events.ready++, (events.metadata = m)),
    onMessage: (parts) => events.messages.push(parts),
    onClose: (info) => events.closes.push(info),
    ...extra,
  });
  return { conn, events, user };
}

for (const chunk of [0, 1, 7]) {
  test(`the handshake completes with the broker's bytes in ${chunk ? chunk + '-byte pieces' : 'one piece'}`, async () => {
    const broker = fakeBroker({}, { chunk });
    const { conn, events, user } = connect(broker);
    await waitFor(() => events.ready === 1, 2000);
    assert.equal(events.ready, 1);
    assert.equal(events.opens, 1);
    assert.deepEqual(broker.clientGreeting, z.makeGreeting({ mechanism: 'CURVE', minor: 1 }));
    assert.deepEqual(broker.initiate.clientKey, user.publicKey);
    assert.deepEqual(events.metadata.get('socket-type'), ascii('ROUTER'));
    assert.deepEqual(
      broker.received.map((f) => [f.command, f.more, z.parseCommand(f.body).name]),
      [[true, false, 'HELLO'], [true, false, 'INITIATE']],
    );
    conn.send(ascii('hello broker'));
    await waitFor(() => broker.messages.length === 1, 2000);
    assert.equal(Buffer.from(broker.messages[0].data).toString(), 'hello broker');
    assert.equal(broker.received[2].command, false, 'MESSAGE travels in a data frame, as libzmq sends it');
    conn.close();
    assert.equal(broker.closedByClient, true);
    assert.equal(events.closes.length, 0, 'no close callback after our own close()');
  });
}

test('a ZMTP PING inside a MESSAGE box is answered by a PONG with the same context', async () => {
  const broker = fakeBroker();
  const { events } = connect(broker);
  await waitFor(() => events.ready === 1, 2000);
  broker.sendFrame(broker.server.seal(z.commandBody('PING', concat(Uint8Array.of(0, 30), ascii('ctx-1234'))), { command: true }));
  await waitFor(() => broker.messages.length === 1, 2000);
  const pong = broker.messages[0];
  assert.equal(pong.command, true);
  assert.deepEqual(z.parseCommand(pong.data), { name: 'PONG', data: ascii('ctx-1234') });
  assert.equal(events.messages.length, 0, 'a command is not a message');
});

test('multi-part messages are assembled from MORE flags, long parts included', async () => {
  const broker = fakeBroker({}, { chunk: 100 });
  const { events } = connect(broker);
  await waitFor(() => events.ready === 1, 2000);
  const big = nacl.randomBytes(3000);
  broker.sendFrame(broker.server.seal(ascii('a'), { more: true }));
  broker.sendFrame(broker.server.seal(big, { more: true }));
  broker.sendFrame(broker.server.seal(new Uint8Array(0)));
  broker.sendFrame(broker.server.seal(ascii('single')));
  await waitFor(() => events.messages.length === 2, 2000);
  assert.deepEqual(events.messages[0], [ascii('a'), big, new Uint8Array(0)]);
  assert.deepEqual(events.messages[1], [ascii('single')]);
});

test('an ERROR command after INITIATE (ZAP refused the key) closes as key-refused', async () => {
  const broker = fakeBroker({ onInitiate: () => 'error' });
  const { events } = connect(broker);
  await waitFor(() => events.closes.length === 1, 2000);
  assert.equal(events.closes[0].kind, 'key-refused');
  assert.match(events.closes[0].detail, /ZAP status 400/);
  assert.equal(broker.closedByClient, true, 'libzmq leaves the connection open: the client closes it');
});

test('a close right after HELLO is a server-key mismatch, not certain; a close before the greeting is unreachable', async () => {
  const b1 = fakeBroker({ onHello: () => 'close' });
  const c1 = connect(b1);
  await waitFor(() => c1.events.closes.length === 1, 2000);
  assert.deepEqual([c1.events.closes[0].kind, c1.events.closes[0].certain], ['server-key-mismatch', false]);

  const b2 = fakeBroker();
  b2.transport = ((inner) => (onBytes, onClose, onOpen) => {
    const t = inner(() => {}, onClose, onOpen);
    setTimeout(() => onClose({ code: 1014, reason: 'broker unreachable', opened: true }), 5);
    return t;
  })(b2.transport);
  const c2 = connect(b2);
  await waitFor(() => c2.events.closes.length === 1, 2000);
  assert.equal(c2.events.closes[0].kind, 'unreachable');
  assert.match(c2.events.closes[0].detail, /broker unreachable/);
});

test('bad bytes from the broker end the connection as a protocol error', async () => {
  const cases = [
    ['garbage instead of a greeting', (b) => b.send(ascii('HTTP/1.1 502 Bad Gateway\r\n\r\n'))],
    ['a PLAIN greeting', (b) => b.send(z.makeGreeting({ mechanism: 'PLAIN', minor: 1 }))],
    ['a data frame in the handshake', (b) => (b.send(z.makeGreeting({ minor: 1 })), b.sendFrame(ascii('hi')))],
    ['a wrong command name', (b) => (b.send(z.makeGreeting({ minor: 1 })), b.sendFrame(z.commandBody('READY'), { command: true }))],
  ];
  for (const [what, act] of cases) {
    const broker = fakeBroker({}, {});
    broker.transport = ((inner) => (onBytes, onClose, onOpen) => {
      const t = inner(onBytes, onClose, () => {});
      queueMicrotask(() => act(broker));
      return t;
    })(
      // a transport that sends nothing by itself
      (onBytes, onClose) => {
        broker.toClient = onBytes;
        broker.closeClient = onClose;
        return { send() {}, close() { broker.closedByClient = true; }, buffered: () => 0 };
      },
    );
    const { events } = connect(broker);
    await waitFor(() => events.closes.length === 1, 2000);
    assert.equal(events.closes.length, 1, what);
    assert.equal(events.closes[0].kind, 'protocol', what);
  }
});

test('a replayed MESSAGE in traffic ends the connection (protocol), nothing of it is delivered', async () => {
  const broker = fakeBroker();
  const { events } = connect(broker);
  await waitFor(() => events.ready === 1, 2000);
  const m = broker.server.seal(ascii('once'));
  broker.sendFrame(m);
  broker.sendFrame(m);
  await waitFor(() => events.closes.length === 1, 2000);
  assert.equal(events.messages.length, 1);
  assert.equal(events.closes[0].kind, 'protocol');
  assert.match(events.closes[0].detail, /replayed or out of order/);
});

// ------------------------------------------------------------ the Client on top

// The states in order, without repeats ('state' events also fire when only the detail changes).
const distinct = (xs) => xs.filter((x, i) => i === 0 || xs[i - 1] !== x);

function newClient(transportFactory, extra = {}) {
  const user = cb.generateKeyPair();
  const states = [];
  const client = new cb.Client({
    transport: transportFactory,
    serverKey: extra.serverKey,
    publicKey: user.publicKey,
    secretKey: user.secretKey,
    protocol,
    reconnect: { minMs: 20, maxMs: 80 },
    heartbeatMs: 100,
    ...extra,
  });
  client.on('state', (s) => states.push(s.state));
  return { client, states };
}

// A fake broker for every connection the Client opens, counted.
function brokerFactory(script, opts) {
  const made = [];
  let keys = null;
  const factory = (onBytes, onClose, onOpen) => {
    const b = fakeBroker({ ...script, keys }, opts);
    keys = b.server.keys;
    made.push(b);
    return b.transport(onBytes, onClose, onOpen);
  };
  const first = fakeBroker({ ...script });
  keys = first.server.keys;
  return { factory, made, serverKey: cb.z85encode(keys.publicKey) };
}

// Answers REGISTER, and each HEARTBEAT with a HEARTBEAT (the fake broker's
// alive signal) unless silent() says otherwise.
function registered(broker, { name = 'web-user', brokerId = 'b1', silent = () => false } = {}) {
  return (b, msg) => {
    const frame = protocol.Frame.decode(msg.data);
    for (const op of frame.ops) {
      if (op.heartbeat && !silent()) b.sendFrame(b.server.seal(protocol.Frame.encode({ ops: [{ heartbeat: {} }] }).finish()));
      if (op.register) {
        const reply = protocol.Frame.encode({
          ops: [{ registered: { requestId: op.register.requestId, name, sessionId: 's1', heartbeatMs: 100, brokerId, limits: {} } }],
        }).finish();
        b.sendFrame(b.server.seal(reply));
      }
      if (broker) broker(b, op);
    }
  };
}

test('Client: a key refused in the handshake is final: state key-refused, connect() rejects, no retry', async () => {
  const f = brokerFactory({ onInitiate: () => 'error' });
  const { client, states } = newClient(f.factory, { serverKey: f.serverKey });
  await assert.rejects(client.connect(), (e) => e.code === 'KEY_REFUSED' && /allow-list/.test(e.message));
  await sleep(200);
  assert.equal(f.made.length, 1, 'no reconnect loop');
  assert.deepEqual(distinct(states), ['connecting', 'handshaking', 'key-refused']);
  assert.throws(() => client.subscribe('x', () => {}), (e) => e.code === 'KEY_REFUSED');
});

test('Client: a broker that drops every HELLO is a server-key mismatch after a second attempt', async () => {
  const f = brokerFactory({ onHello: () => 'close' });
  const { client, states } = newClient(f.factory, { serverKey: f.serverKey });
  await assert.rejects(client.connect(), (e) => e.code === 'SERVER_KEY_MISMATCH');
  await sleep(150);
  assert.equal(f.made.length, 2);
  assert.deepEqual(distinct(states), ['connecting', 'handshaking', 'reconnecting', 'server-key-mismatch']);
});

test('Client: registers, answers PING ops, sends HEARTBEAT when idle, and reconnects when the broker is silent', async () => {
  const seen = [];
  let silent = false;
  const f = brokerFactory({
    onMessage: registered((b, op) => {
      seen.push(op.body);
      if (op.register && !silent)
        b.sendFrame(b.server.seal(protocol.Frame.encode({ ops: [{ ping: { nonce: 77 } }] }).finish()));
      if (op.pong) assert.equal(Number(op.pong.nonce), 77);
    }, { silent: () => silent }),
  });
  const { client, states } = newClient(f.factory, { serverKey: f.serverKey });
  const reg = await client.connect({ timeoutMs: 2000 });
  assert.equal(reg.name, 'web-user');
  assert.equal(client.name, 'web-user');
  await waitFor(() => seen.includes('pong') && seen.includes('heartbeat'), 2000);
  assert.ok(seen.includes('pong'), 'PONG sent');
  assert.ok(seen.includes('heartbeat'), 'HEARTBEAT sent after 100 ms of silence');
  // The fake broker never sends anything by itself: after 3 intervals the client reconnects.
  silent = true;
  await waitFor(() => f.made.length >= 2 && client.state === 'registered', 3000);
  assert.ok(f.made.length >= 2, 'reconnected');
  assert.ok(states.includes('reconnecting'));
  assert.ok(client.stats.reconnects >= 1);
  client.close();
  assert.equal(client.state, 'closed');
});

test('Client: broker ERROR codes reach the caller by name; NOT_REGISTERED registers again on the same connection', async () => {
  let registers = 0;
  const f = brokerFactory({
    onMessage: registered((b, op) => {
      if (op.register) ++registers;
      const reply = (o) => b.sendFrame(b.server.seal(protocol.Frame.encode({ ops: [o] }).finish()));
      if (op.publish && op.publish.topic === 'denied')
        reply({ error: { requestId: op.publish.requestId, code: 3, message: 'no', topic: 'denied', answers: 'publish' } });
      if (op.publish && op.publish.topic === 'forget')
        reply({ error: { requestId: op.publish.requestId, code: 2, message: 'not registered' } });
      if (op.publish && op.publish.topic === 'ok')
        reply({ puback: { requestId: op.publish.requestId, topic: 'ok', seq: 5, delivered: 1 } });
    }),
  });
  const { client } = newClient(f.factory, { serverKey: f.serverKey });
  const errors = [];
  client.on('error', (e) => errors.push(e.code));
  await client.connect({ timeoutMs: 2000 });
  assert.deepEqual(await client.publish('ok', 'x'), { topic: 'ok', seq: 5, delivered: 1, dropped: 0 });
  await assert.rejects(client.publish('denied', 'x'), (e) => e.code === 'ERROR_DENIED' && e.topic === 'denied' && e.requestId > 0);
  await assert.rejects(client.publish('forget', 'x'), (e) => e.code === 'ERROR_NOT_REGISTERED');
  await waitFor(() => registers === 2 && client.state === 'registered', 2000);
  assert.equal(registers, 2, 'registered again');
  assert.equal(f.made.length, 1, 'on the same connection');
  assert.deepEqual(errors, ['ERROR_DENIED', 'ERROR_NOT_REGISTERED']);
  await assert.rejects(client.publish('t', { not: 'bytes' }), (e) => e.code === 'USAGE');
  client.close();
  await assert.rejects(client.publish('ok', 'x'), (e) => e.code === 'CLOSED');
});

test('Client: options are checked at construction', () => {
  const k = cb.generateKeyPair();
  const other = cb.generateKeyPair();
  const base = { url: 'ws://127.0.0.1:1/bus', serverKey: other.publicKey, ...k, protocol };
  assert.throws(() => new cb.Client({ ...base, serverKey: 'short' }), (e) => e.code === 'USAGE');
  assert.throws(() => new cb.Client({ ...base, secretKey: other.secretKey }), /does not belong/);
  assert.throws(() => new cb.Client({ ...base, protocol: undefined }), /loadProtocol/);
  assert.throws(() => new cb.Client({ ...base, url: undefined }), /url or transport/);
});
