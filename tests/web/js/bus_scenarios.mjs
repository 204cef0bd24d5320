// The curvebus.js Client against a real curvebus-broker, with the C++ CLI on
// the other end.  Run twice: straight over TCP (interop.test.mjs) and through
// the curvebus-web relay over a WebSocket (relay.test.mjs); `link` says how
// the Client reaches the broker:
//   link.name                     a label for the titles
//   await link.start(env)         after the broker started (env: BrokerEnv)
//   link.transport(env)           -> a transport for new Client({ transport })
//   await link.stop()
// Both variants run the same assertions.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadLibrary, protocolText, BrokerEnv, bin, run, start, waitFor, sleep } from './helpers.mjs';

const { cb } = await loadLibrary();
const protocol = cb.protocolFromText(...protocolText());
const text = (b) => Buffer.from(b).toString('utf8');
const distinct = (xs) => xs.filter((x, i) => i === 0 || xs[i - 1] !== x);

export function busScenarios(link) {
  let env;

  const client = (keys, extra = {}) => {
    const c = new cb.Client({
      transport: link.transport(env),
      serverKey: env.server.publicKey,
      publicKey: keys.publicKey,
      secretKey: keys.secretKey,
      protocol,
      clientName: 'web-test',
      heartbeatMs: 200,
      reconnect: { minMs: 50, maxMs: 400 },
      ...extra,
    });
    c.states = [];
    c.errors = [];
    c.on('state', (s) => c.states.push(s.state));
    c.on('error', (e) => c.errors.push(e));
    return c;
  };

  test.before(async () => {
    env = new BrokerEnv(`webjs-${link.name}`);
    await env.setup(cb);
    env.web = await env.addClient('web', {
      publish: ['web/#', 'robot/+/cmd'],
      subscribe: ['web/#', 'robot/+/cmd', '$SYS/presence/#'],
    });
    env.cli = await env.addClient('cli', { publish: ['web/#', 'robot/+/cmd'], subscribe: ['web/#'] });
    // A key pair made by curvebus.js, written as certificates for the CLI.
    env.made = cb.generateKeyPair();
    fs.writeFileSync(path.join(env.keysDir, 'madeinjs_secret'), cb.makeZcert({ ...env.made, name: 'madeinjs' }), { mode: 0o600 });
    fs.writeFileSync(path.join(env.keysDir, 'madeinjs'), cb.makeZcert({ publicKey: env.made.publicKey, name: 'madeinjs' }));
    await env.addClient('madeinjs', { publicKey: env.made.publicKey, publish: ['web/#'], subscribe: ['web/#'] });
    env.stranger = cb.generateKeyPair();
    await env.start(['--heartbeat-ms', '200', '--max-message-bytes', '100000']);
    await link.start(env);
  });

  test.after(async () => {
    if (link.stop) await link.stop();
    if (env) await env.cleanup();
  });

  test(`[${link.name}] a publication from curvebus.js reaches \`curvebus sub\`, and one from \`curvebus pub\` reaches curvebus.js`, async () => {
    const c = client(env.web);
    const reg = await c.connect({ timeoutMs: 10000 });
    assert.equal(reg.name, 'web');
    assert.deepEqual(distinct(c.states), ['connecting', 'handshaking', 'registered']);
    const got = [];
    await c.subscribe('web/from-cli/#', (m) => got.push(m));

    const sub = start(bin('CURVEBUS_CLI_BIN'), ['sub', 'web/from-js/#', '--json', '--count', '2', '--timeout', '15'], {
      env: env.cliEnv('cli'),
    });
    // The CLI is subscribed once its session shows in the broker's log.
    assert.ok(await waitFor(() => /subscribe name=cli .*granted=1/.test(env.log()), 10000), 'CLI subscribed');
    const ack = await c.publish('web/from-js/a', 'héllo from the browser', { ack: true });
    assert.equal(ack.seq, 1);
    assert.equal(ack.delivered, 1);
    await c.publish('web/from-js/b', new Uint8Array([0, 1, 2, 255]), { ack: false });
    assert.equal(await sub.exited, 0, sub.output());
    const lines = sub.lines().map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => [l.topic, l.publisher, l.seq]),
      [['web/from-js/a', 'web', 1], ['web/from-js/b', 'web', 1]],
    );
    assert.equal(lines[0].payload, 'héllo from the browser');

    const r = await run(bin('CURVEBUS_CLI_BIN'), ['pub', 'web/from-cli/x', 'from the C++ CLI'], { env: env.cliEnv('cli') });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await waitFor(() => got.length === 1, 5000));
    assert.deepEqual(
      [got[0].topic, text(got[0].payload), got[0].publisher, got[0].seq, got[0].retained],
      ['web/from-cli/x', 'from the C++ CLI', 'cli', 1, false],
    );
    assert.ok(Math.abs(got[0].timestampUs / 1000 - Date.now()) < 60000, 'timestampUs is µs since the epoch');
    // The broker logs this session's key as curvebus.js computes its fingerprint.
    assert.match(env.log(), new RegExp(`session open name=web fp=${cb.keyFingerprint(env.web.publicKey)} `));
    assert.match(env.log(), new RegExp(`server_fp=${cb.keyFingerprint(env.server.publicKey)} `));
    assert.match(env.log(), /client="web-test" version="[^"]*-web"/);
    c.close();
    assert.ok(await waitFor(() => /bye name=web .*reason="closed"/.test(env.log()), 5000), 'BYE reached the broker');
  });

  test(`[${link.name}] retained values come with a subscription, and pull returns the history`, async () => {
    const c = client(env.web);
    await c.connect({ timeoutMs: 10000 });
    for (let i = 1; i <= 5; ++i) await c.publish('web/hist', `v${i}`, { ack: true, retain: i === 5 });
    const got = [];
    await c.subscribe(['web/hist', 'web/none/+'], (m) => got.push(m), { retained: true });
    assert.ok(await waitFor(() => got.length === 1, 5000));
    assert.deepEqual([text(got[0].payload), got[0].retained, got[0].seq], ['v5', true, 5]);
    const last3 = await c.pull('web/hist', { history: 3 });
    assert.deepEqual(last3.map((m) => [text(m.payload), m.seq]), [['v3', 3], ['v4', 4], ['v5', 5]]);
    assert.equal(last3.lastSeq, 5);
    const latest = await c.pull('web/hist');
    assert.deepEqual(latest.map((m) => m.seq), [5]);
    const after3 = await c.pull('web/hist', { sinceSeq: 3 });
    assert.deepEqual(after3.map((m) => m.seq), [4, 5]);
    const all = await c.pull('web/hist', { history: 10 });
    assert.deepEqual(all.map((m) => m.seq), [2, 3, 4, 5], 'everything after seq 1 (since_seq 0 means latest only)');
    c.close();
  });

  test(`[${link.name}] the broker's refusals come back with their ErrorCode names`, async () => {
    const c = client(env.web);
    await c.connect({ timeoutMs: 10000 });
    await assert.rejects(c.publish('forbidden/x', 'no', { ack: true }), (e) => e.code === 'ERROR_DENIED' && e.requestId > 0);
    await assert.rejects(c.subscribe('forbidden/#', () => {}).ready, (e) => e.code === 'ERROR_DENIED' && e.topic === 'forbidden/#');
    await assert.rejects(c.subscribe('web/a#', () => {}).ready, (e) => e.code === 'ERROR_INVALID_TOPIC');
    await assert.rejects(c.pull('web/never'), (e) => e.code === 'ERROR_NOT_FOUND');
    await assert.rejects(c.publish('web/+/x', 'no'), (e) => e.code === 'ERROR_INVALID_TOPIC');
    await assert.rejects(c.publish('web/big', new Uint8Array(100001)), (e) => e.code === 'ERROR_TOO_LARGE');
    // A refused fire-and-forget publication is reported on 'error' only.
    c.errors.length = 0;
    await c.publish('forbidden/y', 'no', { ack: false });
    assert.ok(await waitFor(() => c.errors.length === 1, 5000));
    assert.deepEqual([c.errors[0].code, c.errors[0].requestId, c.errors[0].topic], ['ERROR_DENIED', 0, 'forbidden/y']);
    assert.equal(c.state, 'registered', 'refusals do not end the session');
    c.close();
  });

  test(`[${link.name}] a key pair made by curvebus.js works for the C++ CLI (its certificate) and for curvebus.js`, async () => {
    const c = client(env.made);
    const reg = await c.connect({ timeoutMs: 10000 });
    assert.equal(reg.name, 'madeinjs');
    const got = [];
    await c.subscribe('web/made', (m) => got.push(m));
    const r = await run(bin('CURVEBUS_CLI_BIN'), ['pub', 'web/made', 'signed by a JS key'], {
      env: env.cliEnv(path.join(env.keysDir, 'madeinjs_secret')),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await waitFor(() => got.length === 1, 5000));
    assert.equal(got[0].publisher, 'madeinjs');
    c.close();
  });

  test(`[${link.name}] a robot command encodes to the same bytes as \`curvebus pub --json\` makes of it`, async () => {
    const c = client(env.web);
    await c.connect({ timeoutMs: 10000 });
    const got = [];
    await c.subscribe('robot/+/cmd', (m) => got.push(m));
    const json = '{"id":"c1","issuedUs":"1795359379141000","forward":{"distanceCm":50,"speedPct":60}}';
    const r = await run(bin('CURVEBUS_CLI_BIN'), ['pub', '--json', 'robot/alex/cmd', json], { env: env.cliEnv('cli') });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await waitFor(() => got.length === 1, 5000));
    const mine = cb.encodeRobotCommand(protocol, { id: 'c1', issuedUs: 1795359379141000, forward: { distanceCm: 50, speedPct: 60 } });
    assert.deepEqual(new Uint8Array(got[0].payload), new Uint8Array(mine));
    const decoded = cb.decodeRobotPayload(protocol, got[0].topic, got[0].payload);
    assert.deepEqual([decoded.id, decoded.issuedUs, decoded.action, decoded.forward], ['c1', 1795359379141000, 'forward', { distanceCm: 50, speedPct: 60 }]);
    // Missing id and issuedUs are filled in, as the CLI does.
    const filled = protocol.RobotCommand.decode(cb.encodeRobotCommand(protocol, { estop: { reason: 'test' } }));
    assert.ok(filled.id.length > 0);
    assert.ok(Math.abs(Number(filled.issuedUs) / 1000 - Date.now()) < 5000);
    assert.equal(cb.robotKind('robot/alex/cmd/clear-estop'), 'cmd');
    assert.throws(() => cb.encodeRobotCommand(protocol, { forward: { speedPct: 'fast' } }), /invalid robot command/);
    c.close();
  });

  test(`[${link.name}] a key not in the allow-list ends in key-refused, once, with no reconnect loop`, async () => {
    const before = (env.log().match(/auth denied/g) || []).length;
    const c = client(env.stranger);
    await assert.rejects(c.connect({ timeoutMs: 10000 }), (e) => e.code === 'KEY_REFUSED');
    assert.equal(c.state, 'key-refused');
    assert.deepEqual(distinct(c.states), ['connecting', 'handshaking', 'key-refused']);
    await sleep(600);
    assert.equal(c.state, 'key-refused');
    assert.equal((env.log().match(/auth denied/g) || []).length, before + 1, 'one handshake only');
    assert.match(env.log(), new RegExp(`auth denied fp=${cb.keyFingerprint(env.stranger.publicKey)} `));
  });

  test(`[${link.name}] a wrong broker key ends in server-key-mismatch`, async () => {
    const c = client(env.web, { serverKey: cb.generateKeyPair().publicKey });
    await assert.rejects(c.connect({ timeoutMs: 10000 }), (e) => e.code === 'SERVER_KEY_MISMATCH');
    assert.equal(c.state, 'server-key-mismatch');
    await sleep(600);
    assert.equal(c.state, 'server-key-mismatch', 'final: no more attempts');
  });

  test(`[${link.name}] after a broker restart the client reconnects, sees the new broker_id and keeps its subscriptions`, async () => {
    const c = client(env.web);
    const first = await c.connect({ timeoutMs: 10000 });
    const got = [];
    await c.subscribe('web/restart/#', (m) => got.push(text(m.payload)));
    await env.restart(['--heartbeat-ms', '200', '--max-message-bytes', '100000']);
    assert.ok(await waitFor(() => c.state === 'registered' && c.registration.brokerId !== first.brokerId, 15000), c.states.join(' '));
    assert.ok(c.states.includes('reconnecting'));
    assert.ok(c.stats.reconnects >= 1);
    // Subscribed again by the client itself: a CLI publication arrives.
    assert.ok(await waitFor(() => /subscribe name=web .*granted=1/.test(env.log()), 5000));
    const r = await run(bin('CURVEBUS_CLI_BIN'), ['pub', 'web/restart/x', 'after restart'], { env: env.cliEnv('cli') });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await waitFor(() => got.includes('after restart'), 5000), JSON.stringify(got));
    c.close();
  });
}
