// The CURVE security mechanism, client side (ZeroMQ RFC 25 ZMTP-CURVE and
// RFC 26 CurveZMQ), as a state machine over command bodies: no I/O, no
// framing.  Every primitive is TweetNaCl-js's (nacl.box, box.before/after,
// box.open(.after), box.keyPair, randomBytes); nothing here is cryptography of
// our own, only the message layout of the RFCs.
//
//   C, c   the client's permanent key pair (the user's key)
//   S      the server's permanent public key (pinned: the broker key)
//   C', c' the client's transient pair, new for every connection
//   S'     the server's transient public key, from WELCOME
//
//   client                                   server
//   HELLO    C', Box[64 zeros](C'->S)   ->
//                                       <-   WELCOME  Box[S' + cookie](S->C')
//   INITIATE cookie, Box[C + vouch + metadata](C'->S'),
//            vouch = Box[C' + S](C->S')  ->
//                                       <-   READY    Box[metadata](S'->C')
//   MESSAGE  Box[flags + data](C'->S')  <->  MESSAGE  Box[flags + data](S'->C')
//
// Contract (one CurveClient per connection; states in order
// 'start' -> 'welcome' -> 'ready' -> 'traffic', or 'failed'):
//   new CurveClient({ serverKey, publicKey, secretKey, metadata })
//     keys: 32-byte Uint8Arrays; metadata: [[name, value]] sent in INITIATE.
//   hello()          -> HELLO command body            ('start' -> 'welcome')
//   welcome(body)    -> INITIATE command body          ('welcome' -> 'ready')
//                       throws CurveError 'server-key' when the box does not
//                       open: the server does not hold the pinned key.
//   ready(body)      -> Map of the server's metadata   ('ready' -> 'traffic')
//   seal(data, { more, command }) -> MESSAGE command body ('traffic' only);
//                       short nonces 1, 2, 3, ... strictly increasing, shared
//                       with HELLO and INITIATE as libzmq counts them.
//   open(body)       -> { data, more, command }        ('traffic' only)
//                       throws CurveError 'protocol' for a malformed MESSAGE,
//                       'nonce' for a nonce not above the last one accepted
//                       (replayed or out of order), 'box' for a box that does
//                       not open (altered, or not from S').
// Every CurveError leaves the machine in 'failed': the caller must drop the
// connection (RFC 26: "SHALL disconnect").  Not thread-safe (one event loop).

import { nacl } from './deps.js';
import { commandBody, parseCommand, encodeMetadata, parseMetadata } from './zmtp.js';

export class CurveError extends Error {
  // kind: 'server-key' | 'protocol' | 'nonce' | 'box' | 'state'
  constructor(kind, message) {
    super(message);
    this.name = 'CurveError';
    this.kind = kind;
  }
}

const ascii = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const HELLO_PREFIX = ascii('CurveZMQHELLO---');
const WELCOME_PREFIX = ascii('WELCOME-');
const VOUCH_PREFIX = ascii('VOUCH---');
const INITIATE_PREFIX = ascii('CurveZMQINITIATE');
const READY_PREFIX = ascii('CurveZMQREADY---');
const MESSAGE_C_PREFIX = ascii('CurveZMQMESSAGEC');
const MESSAGE_S_PREFIX = ascii('CurveZMQMESSAGES');
const MESSAGE_NAME = Uint8Array.of(7, ...ascii('MESSAGE'));

// 24-byte nonce: `prefix` followed by `tail` bytes.
function nonce(prefix, tail) {
  const n = new Uint8Array(24);
  n.set(prefix, 0);
  n.set(tail, prefix.length);
  return n;
}

// 8-byte big-endian short nonce of a counter below 2^53.
function shortNonce(counter) {
  const b = new Uint8Array(8);
  const view = new DataView(b.buffer);
  view.setUint32(0, Math.floor(counter / 0x100000000));
  view.setUint32(4, counter >>> 0);
  return b;
}

function readShortNonce(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  return (BigInt(view.getUint32(0)) << 32n) | BigInt(view.getUint32(4));
}

function concat(...arrays) {
  let size = 0;
  for (const a of arrays) size += a.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

function checkKey(name, key) {
  if (!(key instanceof Uint8Array) || key.length !== 32)
    throw new TypeError(`CurveClient: ${name} must be 32 bytes`);
}

export class CurveClient {
  constructor({ serverKey, publicKey, secretKey, metadata = [] }) {
    checkKey('serverKey', serverKey);
    checkKey('publicKey', publicKey);
    checkKey('secretKey', secretKey);
    this.serverKey = serverKey;
    this.publicKey = publicKey;
    this.secretKey = secretKey;
    this.metadata = metadata;
    this.transient = nacl().box.keyPair(); // C', c'
    this.nonce = 1; // next short nonce we send
    this.peerNonce = 0n; // last short nonce accepted from the server
    this.sharedKey = null; // box.before(S', c')
    this.cookie = null;
    this.state = 'start';
  }

  _fail(kind, message) {
    this.state = 'failed';
    return new CurveError(kind, message);
  }

  _expect(state) {
    if (this.state !== state) throw this._fail('state', `CURVE: ${state} expected, state is ${this.state}`);
  }

  hello() {
    this._expect('start');
    const n = shortNonce(this.nonce++);
    const box = nacl().box(new Uint8Array(64), nonce(HELLO_PREFIX, n), this.serverKey, this.transient.secretKey);
    // version 1.0, 72 bytes of anti-amplification padding, C', nonce, box: 194 bytes.
    const data = concat(Uint8Array.of(1, 0), new Uint8Array(72), this.transient.publicKey, n, box);
    this.state = 'welcome';
    return commandBody('HELLO', data);
  }

  welcome(body) {
    this._expect('welcome');
    const cmd = this._command(body, 'WELCOME');
    if (cmd.data.length !== 160) throw this._fail('protocol', `WELCOME of ${cmd.data.length + 8} bytes, 168 expected`);
    const plain = nacl().box.open(
      cmd.data.subarray(16, 160),
      nonce(WELCOME_PREFIX, cmd.data.subarray(0, 16)),
      this.serverKey,
      this.transient.secretKey,
    );
    if (!plain)
      throw this._fail('server-key', 'the WELCOME box does not open: the server does not hold the pinned broker key');
    const serverTransient = plain.slice(0, 32);
    this.cookie = plain.slice(32, 128);
    this.sharedKey = nacl().box.before(serverTransient, this.transient.secretKey);

    const vouchNonce = nacl().randomBytes(16);
    const vouch = nacl().box(
      concat(this.transient.publicKey, this.serverKey),
      nonce(VOUCH_PREFIX, vouchNonce),
      serverTransient,
      this.secretKey,
    );
    const n = shortNonce(this.nonce++);
    const inner = concat(this.publicKey, vouchNonce, vouch, encodeMetadata(this.metadata));
    const box = nacl().box.after(inner, nonce(INITIATE_PREFIX, n), this.sharedKey);
    this.state = 'ready';
    return commandBody('INITIATE', concat(this.cookie, n, box));
  }

  ready(body) {
    this._expect('ready');
    const cmd = this._command(body, 'READY');
    if (cmd.data.length < 8 + 16) throw this._fail('protocol', 'READY too short');
    const n = cmd.data.subarray(0, 8);
    const plain = nacl().box.open.after(cmd.data.subarray(8), nonce(READY_PREFIX, n), this.sharedKey);
    if (!plain) throw this._fail('box', 'the READY box does not open');
    this.peerNonce = readShortNonce(n);
    let props;
    try {
      props = parseMetadata(plain);
    } catch (e) {
      throw this._fail('protocol', `READY metadata: ${e.message}`);
    }
    this.state = 'traffic';
    return props;
  }

  seal(data, { more = false, command = false } = {}) {
    this._expect('traffic');
    const n = shortNonce(this.nonce++);
    const plain = new Uint8Array(1 + data.length);
    plain[0] = (more ? 0x01 : 0) | (command ? 0x02 : 0);
    plain.set(data, 1);
    const box = nacl().box.after(plain, nonce(MESSAGE_C_PREFIX, n), this.sharedKey);
    const body = new Uint8Array(16 + box.length);
    body.set(MESSAGE_NAME, 0);
    body.set(n, 8);
    body.set(box, 16);
    return body;
  }

  open(body) {
    this._expect('traffic');
    if (body.length < 8 + 8 + 17 || !startsWith(body, MESSAGE_NAME))
      throw this._fail('protocol', 'not a MESSAGE command (or shorter than 33 bytes)');
    const n = body.subarray(8, 16);
    const value = readShortNonce(n);
    if (value <= this.peerNonce)
      throw this._fail('nonce', `MESSAGE nonce ${value} is not above ${this.peerNonce}: replayed or out of order`);
    const plain = nacl().box.open.after(body.subarray(16), nonce(MESSAGE_S_PREFIX, n), this.sharedKey);
    if (!plain) throw this._fail('box', 'a MESSAGE box does not open');
    this.peerNonce = value;
    const flags = plain[0];
    if (flags & 0xfc) throw this._fail('protocol', 'reserved MESSAGE flag bits set');
    return { data: plain.subarray(1), more: (flags & 0x01) !== 0, command: (flags & 0x02) !== 0 };
  }

  _command(body, name) {
    let cmd;
    try {
      cmd = parseCommand(body);
    } catch (e) {
      throw this._fail('protocol', `${name} expected: ${e.message}`);
    }
    if (cmd.name !== name) throw this._fail('protocol', `${name} expected, got ${cmd.name}`);
    return cmd;
  }
}

function startsWith(bytes, prefix) {
  for (let i = 0; i < prefix.length; ++i) if (bytes[i] !== prefix[i]) return false;
  return true;
}
