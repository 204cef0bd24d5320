// bench/web/bench.mjs: 64 B publish throughput and publish->ack latency of
// the curvebus.js client in Node, through the curvebus-web relay (WebSocket)
// and straight over TCP to the same broker, with the C++ CLI straight over
// TCP for reference.  Run by bench/run-web, which starts the broker and the
// relay; prints one Markdown table.
//
//   node --experimental-websocket bench/web/bench.mjs --home DIR --relay ws://HOST:PORT/bus
//        --cli PATH [--seconds N] [--rounds R] [--size 64] [--window 100]
//
// The two JS paths are measured in alternating rounds (relay, TCP, relay,
// TCP, ...) so that both see the same machine; rates are the median of the
// rounds, latency percentiles are over every acked publication of the rounds.
// Per path and round:
//   acks off    publications without ack as fast as the client's queue and
//               the transport's buffer allow (back-pressure: drain() every
//               1000), for N s; then one acked publication: every earlier one
//               was accepted by then (one connection is ordered).  Rate =
//               publications / time to that last PUBACK.  A second client
//               (TCP) subscribes and counts deliveries: "delivered" shows
//               nothing was lost on the way.
//   acks on, 1  each publication waits for its PUBACK before the next; the
//               same run gives the publish->ack latency p50/p99.
//   acks on, W  W acked publications in flight at once.
// The CLI: `curvebus pub TOPIC` with one 64-byte line per publication on stdin,
// --no-ack and with acks (it waits for each); rate = lines / wall time of the
// process (start-up and connect included, about 20 ms).

import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(import.meta.url);

function args() {
  const a = { seconds: 5, rounds: 3, size: 64, window: 100 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const k of ['seconds', 'rounds', 'size', 'window']) a[k] = Number(a[k]);
  for (const k of ['home', 'relay', 'cli']) if (!a[k]) throw new Error(`--${k} is required`);
  return a;
}

async function load() {
  const nacl = require('/usr/share/nodejs/tweetnacl/nacl-fast.js');
  const protobuf = require(path.join(REPO, 'web/node_modules/protobufjs/index.js'));
  const { blake2b } = await import(pathToFileURL(path.join(REPO, 'web/node_modules/@noble/hashes/blake2.js')).href);
  const cb = await import(pathToFileURL(path.join(REPO, 'web/static/curvebus.js')).href);
  const { tcpTransport } = await import(pathToFileURL(path.join(REPO, 'web/static/node-tcp.js')).href);
  cb.configure({ nacl, protobuf, blake2b });
  const protocol = cb.protocolFromText(
    fs.readFileSync(path.join(REPO, 'proto/curvebus.proto'), 'utf8'),
    fs.readFileSync(path.join(REPO, 'proto/robot.proto'), 'utf8'),
  );
  return { cb, tcpTransport, protocol };
}

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const o = args();
  const { cb, tcpTransport, protocol } = await load();
  const home = o.home;
  const endpoint = fs.readFileSync(path.join(home, 'endpoint'), 'utf8').trim();
  const serverKey = cb.parseZcert(fs.readFileSync(path.join(home, 'keys/broker'), 'utf8')).publicKey;
  const me = cb.parseZcert(fs.readFileSync(path.join(home, 'keys/dev_secret'), 'utf8'));
  const payload = new Uint8Array(o.size).fill(0x61);

  const client = async (transport) => {
    const c = new cb.Client({ transport, serverKey, ...me, protocol, clientName: 'bench-web', maxQueued: 20000 });
    await c.connect({ timeoutMs: 10000 });
    return c;
  };
  const paths = [
    ['curvebus.js via curvebus-web (WebSocket)', () => cb.webSocketTransport(o.relay)],
    ['curvebus.js straight to the broker (TCP)', () => tcpTransport(endpoint)],
  ];

  // One round of one path: the three cells.
  const measure = async (transport, topic) => {
    const sub = await client(tcpTransport(endpoint));
    let delivered = 0;
    await sub.subscribe(topic, () => ++delivered);
    const pub = await client(transport());

    // acks off
    let sent = 0;
    const t0 = now();
    const stopAt = t0 + o.seconds * 1000;
    while (now() < stopAt) {
      for (let i = 0; i < 1000; ++i) pub.publish(topic, payload, { ack: false });
      sent += 1000;
      await pub.drain();
    }
    await pub.publish(topic, payload, { ack: true, timeoutMs: 60000 });
    ++sent;
    const offRate = sent / ((now() - t0) / 1000);
    const deadline = now() + 30000;
    while (delivered < sent && now() < deadline) await sleep(20);
    const offDelivered = delivered;

    // acks on, one in flight: rate and latency
    const lat = [];
    const t1 = now();
    const stop1 = t1 + o.seconds * 1000;
    while (now() < stop1) {
      const s = now();
      await pub.publish(topic, payload, { ack: true });
      lat.push(now() - s);
    }
    const onRate = lat.length / ((now() - t1) / 1000);

    // acks on, W in flight
    let acked = 0;
    const t2 = now();
    const stop2 = t2 + o.seconds * 1000;
    const worker = async () => {
      while (now() < stop2) {
        await pub.publish(topic, payload, { ack: true, timeoutMs: 30000 });
        ++acked;
      }
    };
    await Promise.all(Array.from({ length: o.window }, worker));
    const winRate = acked / ((now() - t2) / 1000);

    pub.close();
    sub.close();
    await sleep(300);
    return { offRate, sent, offDelivered, onRate, winRate, lat };
  };

  const results = paths.map(() => []);
  let cell = 0;
  for (let round = 0; round < o.rounds; ++round)
    for (let pi = 0; pi < paths.length; ++pi) results[pi].push(await measure(paths[pi][1], `bench/web/${++cell}`));
  const rows = paths.map(([label], pi) => {
    const rs = results[pi];
    const lat = rs.flatMap((r) => r.lat).sort((a, b) => a - b);
    return {
      label,
      offRate: median(rs.map((r) => r.offRate)),
      sent: rs.reduce((n, r) => n + r.sent, 0),
      offDelivered: rs.reduce((n, r) => n + r.offDelivered, 0),
      onRate: median(rs.map((r) => r.onRate)),
      winRate: median(rs.map((r) => r.winRate)),
      p50: pct(lat, 50),
      p99: pct(lat, 99),
      n: lat.length,
    };
  });

  // The C++ CLI straight to the broker.
  const line = 'a'.repeat(o.size) + '\n';
  const cli = async (count, extra) => {
    const env = { ...process.env, CURVEBUS_HOME: home };
    const t = now();
    const code = await new Promise((resolve, reject) => {
      const p = spawn(o.cli, ['pub', 'bench/web/cli', ...extra], { env, stdio: ['pipe', 'ignore', 'inherit'] });
      p.on('error', reject);
      p.on('close', resolve);
      p.stdin.on('error', () => {});
      p.stdin.end(line.repeat(count));
    });
    if (code !== 0) throw new Error(`curvebus pub exited ${code}`);
    return count / ((now() - t) / 1000);
  };
  // Sized from the JS runs so each CLI run takes about N seconds.
  const cliOff = await cli(Math.max(10000, Math.round(rows[1].offRate * o.seconds)), ['--no-ack']);
  const cliOn = await cli(Math.max(1000, Math.round(rows[1].onRate * o.seconds)), []);
  rows.push({ label: '`curvebus pub` (C++ client) straight to the broker', offRate: cliOff, onRate: cliOn });

  const k = (r) => (r >= 10000 ? `${(r / 1000).toFixed(0)}k` : r.toFixed(0));
  const ms = (x) => (x === undefined ? '–' : x.toFixed(2));
  console.log(`| ${o.size} B publications, ${o.seconds} s per cell, median of ${o.rounds} rounds | acks off msg/s | delivered / sent | acks on msg/s (1 in flight) | acks on msg/s (${o.window} in flight) | publish→ack p50 ms | p99 ms |`);
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r.label} | ${k(r.offRate)} | ${r.sent ? `${r.offDelivered} / ${r.sent}` : '–'} | ${k(r.onRate)} | ` +
        `${r.winRate ? k(r.winRate) : '–'} | ${ms(r.p50)} | ${ms(r.p99)} |`,
    );
  const [relay, tcp] = rows;
  console.log(
    `\nrelay / direct: acks off ${(relay.offRate / tcp.offRate).toFixed(2)}, acks on ${(relay.onRate / tcp.onRate).toFixed(2)}, ` +
      `${o.window} in flight ${(relay.winRate / tcp.winRate).toFixed(2)}; p50 +${(relay.p50 - tcp.p50).toFixed(3)} ms, ` +
      `p99 +${(relay.p99 - tcp.p99).toFixed(3)} ms (${relay.n} and ${tcp.n} acked publications)`,
  );
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`bench/web: ${e.stack || e}`);
    process.exit(1);
  },
);
