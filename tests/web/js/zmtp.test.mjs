// ZMTP 3.x framing in curvebus.js (web/static/lib/zmtp.js): greeting, short
// and long frames, MORE, commands, metadata, and a stream cut anywhere.

import test from 'node:test';
import assert from 'node:assert/strict';
import { loadLibrary, libModule } from './helpers.mjs';

const { nacl } = await loadLibrary();
const z = await libModule('lib/zmtp.js');

const bytes = (...xs) => Uint8Array.from(xs);
const ascii = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const concat = (...as) => {
  const out = new Uint8Array(as.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of as) {
    out.set(a, at);
    at += a.length;
  }
  return out;
};

// Feeds `stream` to a new decoder in the given chunk sizes; returns what came out.
function decode(stream, chunkSizes = [stream.length], opts = {}) {
  const got = { greetings: [], frames: [] };
  const d = new z.ZmtpDecoder({
    ...opts,
    onGreeting: (g) => got.greetings.push(g),
    onFrame: (f) => got.frames.push({ more: f.more, command: f.command, body: f.body.slice() }),
  });
  let at = 0;
  let i = 0;
  while (at < stream.length) {
    const n = chunkSizes[i++ % chunkSizes.length];
    d.push(stream.subarray(at, at + n));
    at += n;
  }
  return got;
}

test('the client greeting is the 64 bytes libzmq expects: signature, 3.1, CURVE, as-server 0, zero filler', () => {
  const g = z.makeGreeting({ mechanism: 'CURVE', asServer: false, minor: 1 });
  const expected = new Uint8Array(64);
  expected.set([0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 1]);
  expected.set(ascii('CURVE'), 12);
  assert.deepEqual(g, expected);
  assert.deepEqual(z.parseGreeting(g), { major: 3, minor: 1, mechanism: 'CURVE', asServer: false });
});

test('a greeting as libzmq 4.3 sends it (padding 00..01, as-server 0) is accepted', () => {
  const g = z.makeGreeting({ mechanism: 'CURVE', minor: 1 });
  g[8] = 1; // libzmq puts its routing id size + 1 in the padding
  assert.equal(z.parseGreeting(g).mechanism, 'CURVE');
});

test('a greeting that is not ZMTP 3 is refused: bad signature, version 2, bad mechanism padding, as-server 2', () => {
  const good = () => z.makeGreeting({ mechanism: 'CURVE' });
  let g = good();
  g[0] = 0x47; // "GET / HTTP"
  assert.throws(() => z.parseGreeting(g), /bad signature/);
  g = good();
  g[9] = 0x7e;
  assert.throws(() => z.parseGreeting(g), /bad signature/);
  g = good();
  g[10] = 2;
  assert.throws(() => z.parseGreeting(g), /3\.0 or later/);
  g = good();
  g[30] = 0x41;
  assert.throws(() => z.parseGreeting(g), /NUL padded/);
  g = good();
  g[32] = 2;
  assert.throws(() => z.parseGreeting(g), /as-server/);
  assert.throws(() => z.parseGreeting(good().subarray(0, 63)), /shorter/);
});

test('the decoder refuses a non-ZMTP peer at its first byte, without waiting for 64 bytes', () => {
  assert.throws(() => decode(ascii('HTTP/1.1 400 Bad Request')), /bad signature/);
});

test('frames of 0..255 bytes are short (flags + 1-byte size), 256 and more are long (8-byte size)', () => {
  assert.deepEqual(z.encodeFrame(new Uint8Array(0)), bytes(0, 0));
  assert.deepEqual(z.encodeFrame(bytes(9), { more: true }), bytes(1, 1, 9));
  const f255 = z.encodeFrame(new Uint8Array(255).fill(7));
  assert.equal(f255.length, 257);
  assert.deepEqual(f255.subarray(0, 2), bytes(0, 255));
  const f256 = z.encodeFrame(new Uint8Array(256).fill(7), { more: true });
  assert.equal(f256.length, 265);
  assert.deepEqual(f256.subarray(0, 9), bytes(3, 0, 0, 0, 0, 0, 0, 1, 0));
  const big = z.encodeFrame(new Uint8Array(70000));
  assert.deepEqual(big.subarray(0, 9), bytes(2, 0, 0, 0, 0, 0, 1, 0x11, 0x70));
  assert.deepEqual(z.encodeFrame(bytes(1, 2), { command: true }), bytes(4, 2, 1, 2));
  assert.deepEqual(z.encodeFrame(new Uint8Array(300), { command: true }).subarray(0, 3), bytes(6, 0, 0));
});

test('a stream of greeting + frames decodes the same whether it comes whole, byte by byte or cut at random', () => {
  const greeting = z.makeGreeting({ mechanism: 'CURVE', minor: 1 });
  const bodies = [new Uint8Array(0), nacl.randomBytes(1), nacl.randomBytes(255), nacl.randomBytes(256), nacl.randomBytes(5000)];
  const frames = [
    z.encodeCommand('READY', ascii('x')),
    ...bodies.map((b, i) => z.encodeFrame(b, { more: i < bodies.length - 1 })),
  ];
  const stream = concat(greeting, ...frames);
  const expect = (got) => {
    assert.equal(got.greetings.length, 1);
    assert.deepEqual(got.greetings[0], greeting);
    assert.equal(got.frames.length, 6);
    assert.deepEqual(got.frames[0], { more: false, command: true, body: z.commandBody('READY', ascii('x')) });
    bodies.forEach((b, i) => assert.deepEqual(got.frames[i + 1], { more: i < 4, command: false, body: b }));
  };
  expect(decode(stream));
  expect(decode(stream, [1]));
  for (let round = 0; round < 50; ++round) {
    const sizes = Array.from({ length: 7 }, () => 1 + Math.floor(Math.random() * 300));
    expect(decode(stream, sizes));
  }
  // Merged: two connections' worth of frames in one chunk after the greeting.
  const twice = concat(greeting, ...frames, ...frames);
  assert.equal(decode(twice).frames.length, 12);
});

test('a truncated frame yields nothing until its last byte arrives', () => {
  const frame = z.encodeFrame(new Uint8Array(1000).fill(3));
  const got = { frames: [] };
  const d = new z.ZmtpDecoder({ onGreeting: () => {}, onFrame: (f) => got.frames.push(f.body.length) });
  d.push(z.makeGreeting());
  d.push(frame.subarray(0, 5)); // inside the 8-byte size
  d.push(frame.subarray(5, 999));
  assert.deepEqual(got.frames, []);
  d.push(frame.subarray(999));
  assert.deepEqual(got.frames, [1000]);
});

test('bad frames kill the decoder: reserved flag bits, a command with MORE, a frame over the limit', () => {
  const g = z.makeGreeting();
  assert.throws(() => decode(concat(g, bytes(0x08, 0))), /reserved frame flag/);
  assert.throws(() => decode(concat(g, bytes(0x80, 0))), /reserved frame flag/);
  assert.throws(() => decode(concat(g, bytes(0x05, 1, 65))), /command frame with MORE/);
  assert.throws(() => decode(concat(g, bytes(0x02, 0, 0, 0, 0, 0, 0x10, 0, 1)), [100], { maxFrameBytes: 1 << 20 }), /over the/);
  assert.throws(() => decode(concat(g, bytes(0x02, 0xff, 0, 0, 0, 0, 0, 0, 0))), /over 2\^53/);
  const d = new z.ZmtpDecoder({ onGreeting: () => {}, onFrame: () => {} });
  assert.throws(() => d.push(concat(g, bytes(0x08, 0))));
  assert.throws(() => d.push(bytes(0, 0)), /after an error/);
});

test('commands: name then data; a wrong, empty or truncated name is refused', () => {
  assert.deepEqual(z.parseCommand(z.commandBody('PING', bytes(0, 10, 1))), { name: 'PING', data: bytes(0, 10, 1) });
  assert.deepEqual(z.parseCommand(z.commandBody('READY')), { name: 'READY', data: new Uint8Array(0) });
  assert.throws(() => z.parseCommand(new Uint8Array(0)), /empty command/);
  assert.throws(() => z.parseCommand(bytes(0)), /truncated command name/);
  assert.throws(() => z.parseCommand(bytes(9, ...ascii('WELC'))), /truncated command name/);
  assert.throws(() => z.parseCommand(bytes(4, ...ascii('PI G'))), /not letters/);
  assert.throws(() => z.commandBody(''), /bad command name/);
});

test('metadata round-trips; names are case-insensitive; truncated metadata is refused', () => {
  const m = z.encodeMetadata([['Socket-Type', 'DEALER'], ['X-Empty', new Uint8Array(0)], ['User-Id', 'dev']]);
  assert.deepEqual(m.subarray(0, 16), bytes(11, ...ascii('Socket-Type'), 0, 0, 0, 6));
  const props = z.parseMetadata(m);
  assert.deepEqual([...props.keys()], ['socket-type', 'x-empty', 'user-id']);
  assert.deepEqual(props.get('socket-type'), ascii('DEALER'));
  assert.equal(props.get('x-empty').length, 0);
  assert.throws(() => z.parseMetadata(m.subarray(0, m.length - 1)), /truncated metadata value/);
  assert.throws(() => z.parseMetadata(bytes(11, ...ascii('Socket'))), /truncated metadata/);
  assert.throws(() => z.parseMetadata(bytes(0, 0, 0, 0, 0)), /truncated metadata/);
});
