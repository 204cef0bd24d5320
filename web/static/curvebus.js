// curvebus.js: the curvebus client for web pages (and Node >= 20), an ES module
// with no build step.  The page is a CurveZMQ peer like any other: it holds its
// own key pair, pins the broker's public key, and speaks ZMTP 3.1 + CURVE to
// the broker; curvebus-web only relays the encrypted bytes between the
// page's WebSocket and the broker's TCP port.
//
//   import { Client, loadProtocol } from './curvebus.js';
//   const protocol = await loadProtocol();             // parses /proto/*.proto
//   const client = new Client({ url: 'ws://127.0.0.1:7691/bus', serverKey,
//                               publicKey, secretKey, protocol });
//   client.on('state', ({ state, detail }) => ...);
//   await client.connect();                            // -> REGISTERED info
//   const unsub = client.subscribe('robot/alex/#', (msg) => ..., { retained: true });
//   await client.publish('robot/alex/cmd', bytes, { ack: true });
//   const last10 = await client.pull('robot/alex/telemetry', { history: 10 });
//   client.close();
//
// Libraries: TweetNaCl-js (global `nacl`, /vendor/nacl-fast.min.js),
// protobuf.js (global `protobuf`, /vendor/protobuf.min.js), BLAKE2b for
// fingerprints (imported from ./vendor/blake2.js in a browser); or
// configure({ nacl, protobuf, blake2b }) (Node).
//
// ---------------------------------------------------------------- contract
// new Client(options) validates and does nothing else.  options:
//   url | transport   a WebSocket URL to curvebus-web's /bus, or a transport
//                     (see lib/connection.js; node-tcp.js has one for TCP)
//   serverKey         the broker's public key, Z85 (pinned)
//   publicKey, secretKey   this user's key pair, Z85 (from a NAME_secret)
//   protocol          from loadProtocol()
//   clientName ('web'), heartbeatMs (1000: requested alive-signal interval),
//   reconnect { minMs: 250, maxMs: 5000 } (backoff doubles from min to max),
//   requestTimeoutMs (5000), handshakeTimeoutMs (10000),
//   maxQueued (10000 publications held while not registered),
//   role ('ROLE_CLIENT'; the broker uses the allow-list's anyway), provides ([])
//
// States ('state' event, client.state), STATES below:
//   connecting -> handshaking -> registered; on a lost link: reconnecting (with
//   backoff; the same state until registered again); final, with no retry:
//   key-refused (the broker's ZAP refused this key: ERROR in the handshake),
//   server-key-mismatch (the server does not hold the pinned key), closed
//   (close() was called).  Each 'state' event carries a sentence in `detail`.
//
// connect({ timeoutMs }) -> Promise<{ name, sessionId, heartbeatMs, timeoutMs,
//   brokerId, brokerVersion, role, limits }>, resolved at REGISTERED.  Rejects
//   with CurvebusError KEY_REFUSED / SERVER_KEY_MISMATCH / CLOSED, or
//   NO_BROKER after timeoutMs (if given; the client keeps trying until close()).
// subscribe(patterns, handler, { retained }) -> unsub function.  handler(msg)
//   with msg = { topic, payload: Uint8Array, publisher, seq, timestampUs,
//   retained, contentType }, once per matching publication.  The function
//   is also awaitable: `await client.subscribe(...)` waits for the broker's
//   SUBACK and rejects with ERROR_DENIED / ERROR_INVALID_TOPIC /
//   ERROR_TOO_MANY_SUBSCRIPTIONS naming the pattern (the subscription is then
//   dropped); unsub.ready is the same promise (use it where a real Promise
//   is needed: assert.rejects() would call the function).  Calling unsub()
//   unsubscribes.
//   Subscriptions outlive reconnects and broker restarts (re-sent at every
//   registration, with the retained values again when `retained` was asked).
// publish(topic, payload, { retain, ack = true, contentType, timeoutMs })
//   payload: Uint8Array or string (UTF-8).  With ack: resolves with the PUBACK
//   { topic, seq, delivered, dropped }.  Without: resolves once queued (up to
//   maxQueued while not registered; then waits for room while registered).
//   Rejects with CurvebusError (below).
// pull(topic, { history } | { sinceSeq, maxCount }) -> Promise<msg[]> oldest
//   first; `history: N` = the last N kept publications (the protocol cannot
//   return seq 1 once a later one exists: since_seq 0 means "latest only").
//   The array also has lastSeq, firstKeptSeq and gap.  ERROR_NOT_FOUND for a
//   topic never published.
// topics(pattern = '#') -> Promise<TopicsReply as a plain object>.
// drain() -> Promise: resolves (from a macrotask, so I/O and timers get their
//   turn) when every queued op has been handed to the transport and its
//   buffer is below 1 MiB.  A loop that publishes without acks should await
//   it now and then (benchmarks; closing cleanly).
// close() -> BYE (when registered), then closes; final state 'closed'.
// on(event, fn) -> off function; events 'state', 'error'.
// name, state, stats { sent, received, reconnects, errors, sequenceGaps },
//   registration (the last REGISTERED as given by connect()).
//
// Also exported: webSocketTransport(url) (what `url` uses), topicMatches(),
// STATES, VERSION, and from lib/: configure, z85encode/z85decode/isZ85Key,
// parseZcert/makeZcert/generateKeyPair/publicFromSecret/keyFingerprint
// (lib/keys.js), loadProtocol/protocolFromText/robotKind/encodeRobotCommand/
// decodeRobotPayload (lib/protocol.js).
//
// CurvebusError { code, message, requestId, topic, answers, count }:
//   code is the ErrorCode name from curvebus.proto for anything the broker
//   refused ('ERROR_DENIED', 'ERROR_RATE_LIMITED', 'ERROR_TOO_LARGE', ...;
//   the C++ client prints the same names without 'ERROR_'), or one of the
//   client's own: 'TIMEOUT' (no answer in time while registered), 'NO_BROKER'
//   (not connected, or the link was lost with the request in flight),
//   'QUEUE_FULL', 'CLOSED', 'USAGE', 'KEY_REFUSED', 'SERVER_KEY_MISMATCH'.
//   Every ERROR the broker sends is also emitted on 'error' (requestId 0 for
//   a refused fire-and-forget publication), as are refused re-subscriptions.
//
// Liveness (docs/protocol.md §4, the same rules and timing as the C++
// client, clients/src/client.cpp): HEARTBEAT after one agreed interval I of
// our own silence; PONG to every PING; reconnect after 3 I without a word
// from the broker, or when REGISTER is not answered within max(3 s, 3 I).
// ERROR_NOT_REGISTERED / ERROR_SESSION_EXPIRED: register again on the same
// connection; ERROR_KICKED / REVOKED / KEY_EXPIRED / IDENTITY: reconnect.
// A browser throttles timers of hidden tabs; a session may then time out
// at the broker and the client reconnects when the tab wakes.
//
// Single-threaded: everything runs on the page's (or Node's) event loop.
// Handlers are called from it, one message at a time; a handler that throws
// is reported on 'error' (code 'USAGE') and does not stop delivery.

import { configure, hasBlake2b } from './lib/deps.js';
import { z85encode, z85decode, isZ85Key } from './lib/z85.js';
import { parseZcert, makeZcert, generateKeyPair, publicFromSecret, keyFingerprint } from './lib/keys.js';
import {
  loadProtocol,
  protocolFromText,
  robotKind,
  encodeRobotCommand,
  decodeRobotPayload,
  toNumber,
} from './lib/protocol.js';
import { ZmtpCurveConnection } from './lib/connection.js';

export {
  configure,
  z85encode,
  z85decode,
  isZ85Key,
  parseZcert,
  makeZcert,
  generateKeyPair,
  publicFromSecret,
  keyFingerprint,
  loadProtocol,
  protocolFromText,
  robotKind,
  encodeRobotCommand,
  decodeRobotPayload,
};

export const VERSION = '0.1.0-web';

export const STATES = Object.freeze({
  CONNECTING: 'connecting',
  HANDSHAKING: 'handshaking',
  REGISTERED: 'registered',
  RECONNECTING: 'reconnecting',
  KEY_REFUSED: 'key-refused',
  SERVER_KEY_MISMATCH: 'server-key-mismatch',
  CLOSED: 'closed',
});

const FINAL = new Set([STATES.KEY_REFUSED, STATES.SERVER_KEY_MISMATCH, STATES.CLOSED]);
const BATCH_BYTES = 64 * 1024; // one ZeroMQ message (one CURVE box) at most, like the C++ client
const HIGH_WATER = 1024 * 1024; // transport bytes buffered before flushing pauses

export class CurvebusError extends Error {
  constructor(code, message, { requestId = 0, topic = '', answers = '', count = 0 } = {}) {
    super(message);
    this.name = 'CurvebusError';
    this.code = code;
    this.requestId = requestId;
    this.topic = topic;
    this.answers = answers;
    this.count = count;
  }
}

// The browser loads BLAKE2b (fingerprints only) beside this file, unless the
// page configured one.  Node configures it explicitly.
if (typeof window !== 'undefined' && typeof document !== 'undefined' && !hasBlake2b()) {
  try {
    const mod = await import(new URL('./vendor/blake2.js', import.meta.url).href);
    configure({ blake2b: mod.blake2b });
  } catch (e) {
    // keyFingerprint() will name what is missing.
  }
}

// MQTT-style topic filter match, as proto/src/topic.cpp topic_matches(): '+' is
// one level, a final '#' this level and everything below; a pattern starting
// with a wildcard never matches a '$' topic.
export function topicMatches(pattern, topic) {
  if (topic.startsWith('$') && (pattern.startsWith('+') || pattern.startsWith('#'))) return false;
  const p = pattern.split('/');
  const t = topic.split('/');
  for (let i = 0; i < p.length; ++i) {
    if (p[i] === '#') return true;
    if (i >= t.length) return false;
    if (p[i] !== '+' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

const textEncoder = new TextEncoder();
const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

export function webSocketTransport(url, WebSocketImpl = globalThis.WebSocket) {
  if (typeof WebSocketImpl !== 'function')
    throw new CurvebusError('USAGE', 'no WebSocket here (Node: run with --experimental-websocket, or pass transport)');
  return (onBytes, onClose, onOpen) => {
    const ws = new WebSocketImpl(url);
    ws.binaryType = 'arraybuffer';
    let opened = false;
    let closed = false;
    let pending = [];
    let pendingBytes = 0;
    ws.onopen = () => {
      if (closed) return;
      opened = true;
      for (const b of pending) ws.send(b);
      pending = [];
      pendingBytes = 0;
      if (onOpen) onOpen();
    };
    ws.onmessage = (ev) => {
      if (closed) return;
      if (ev.data instanceof ArrayBuffer) onBytes(new Uint8Array(ev.data));
      else if (ArrayBuffer.isView(ev.data)) onBytes(new Uint8Array(ev.data.buffer, ev.data.byteOffset, ev.data.byteLength));
      else {
        // The relay sends binary messages only.
        closed = true;
        ws.close(1003, 'binary messages only');
        onClose({ code: 1003, reason: 'the relay sent a text message', opened });
      }
    };
    ws.onerror = () => {}; // a close event follows, with the code
    ws.onclose = (ev) => {
      if (closed) return;
      closed = true;
      onClose({ code: ev.code, reason: ev.reason || `WebSocket closed (${ev.code})`, opened });
    };
    return {
      send(bytes) {
        if (closed) return;
        if (opened) ws.send(bytes);
        else {
          pending.push(bytes.slice());
          pendingBytes += bytes.length;
        }
      },
      close() {
        if (closed) return;
        closed = true;
        try {
          ws.close(1000, 'client closed');
        } catch (e) {
          // already closing
        }
      },
      buffered() {
        return ws.bufferedAmount + pendingBytes;
      },
    };
  };
}

function messageOf(d) {
  return {
    topic: d.topic,
    payload: d.payload,
    publisher: d.publisher,
    seq: toNumber(d.seq),
    timestampUs: toNumber(d.timestampUs),
    retained: !!d.retained,
    contentType: d.contentType || '',
  };
}

function requestIdOf(op) {
  const body = op[op.body];
  return body && body.requestId !== undefined ? toNumber(body.requestId) : 0;
}

export class Client {
  constructor(options = {}) {
    const o = {
      clientName: 'web',
      heartbeatMs: 1000,
      requestTimeoutMs: 5000,
      handshakeTimeoutMs: 10000,
      maxQueued: 10000,
      role: 'ROLE_CLIENT',
      provides: [],
      maxFrameBytes: 64 * 1024 * 1024,
      ...options,
      reconnect: { minMs: 250, maxMs: 5000, ...(options.reconnect || {}) },
    };
    for (const k of ['serverKey', 'publicKey', 'secretKey'])
      if (!isZ85Key(o[k])) throw new CurvebusError('USAGE', `${k} is missing or not a 40-character Z85 key`);
    if (publicFromSecret(o.secretKey) !== o.publicKey)
      throw new CurvebusError('USAGE', 'secretKey does not belong to publicKey');
    if (!o.protocol || !o.protocol.Frame) throw new CurvebusError('USAGE', 'protocol missing: use loadProtocol()');
    if (!o.transport && !o.url) throw new CurvebusError('USAGE', 'url or transport needed');
    this._opts = o;
    this._transport = o.transport || webSocketTransport(o.url);
    this._keys = {
      serverKey: z85decode(o.serverKey),
      publicKey: z85decode(o.publicKey),
      secretKey: z85decode(o.secretKey),
    };
    this._P = o.protocol;
    this._listeners = new Map();
    this._state = 'idle';
    this._detail = '';
    this._conn = null;
    this._registered = false;
    this._registerId = 0;
    this._registration = null;
    this._brokerId = '';
    this._nextId = 1;
    this._pending = new Map(); // request id -> { resolve, reject, sent, timer, sub }
    this._outq = []; // { bytes, id, sub }
    this._room = []; // resolvers waiting for queue room
    this._drainers = [];
    this._subs = new Set();
    this._lastSeq = new Map();
    this._hbMs = Math.max(10, o.heartbeatMs);
    this._lastSent = 0;
    this._lastHeard = 0;
    this._registerSentAt = 0;
    this._openedAt = 0;
    this._backoff = 0;
    this._nextConnectAt = 0;
    this._suspectMismatch = 0;
    this._timer = null;
    this._flushScheduled = false;
    this._flushTimer = null;
    this._connectWaiters = [];
    this._stats = { sent: 0, received: 0, reconnects: 0, errors: 0, sequenceGaps: 0 };
  }

  get state() {
    return this._state;
  }
  get name() {
    return this._registration ? this._registration.name : '';
  }
  get registration() {
    return this._registration;
  }
  get stats() {
    return { ...this._stats };
  }

  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
  }

  _emit(event, value) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(value);
      } catch (e) {
        if (event !== 'error') this._emit('error', new CurvebusError('USAGE', `a '${event}' listener threw: ${e.message}`));
      }
    }
  }

  _setState(state, detail) {
    if (state === this._state && detail === this._detail) return;
    this._state = state;
    this._detail = detail;
    this._emit('state', { state, detail });
  }

  // ------------------------------------------------------------ connection

  connect({ timeoutMs = 0 } = {}) {
    if (this._state === 'registered') return Promise.resolve(this._registration);
    if (FINAL.has(this._state)) return Promise.reject(this._finalError());
    const p = new Promise((resolve, reject) => {
      const w = { resolve, reject, timer: null };
      if (timeoutMs > 0)
        w.timer = setTimeout(() => {
          this._connectWaiters = this._connectWaiters.filter((x) => x !== w);
          reject(new CurvebusError('NO_BROKER', `not registered with the broker after ${timeoutMs} ms: ${this._detail}`));
        }, timeoutMs);
      this._connectWaiters.push(w);
    });
    if (this._state === 'idle') {
      this._timer = setInterval(() => this._tick(), Math.max(10, Math.min(this._hbMs / 2, 50)));
      this._open('connecting');
    }
    return p;
  }

  _finalError() {
    const code = { 'key-refused': 'KEY_REFUSED', 'server-key-mismatch': 'SERVER_KEY_MISMATCH' }[this._state] || 'CLOSED';
    return new CurvebusError(code, this._detail || 'client closed');
  }

  _open(state) {
    const t = now();
    this._openedAt = t;
    this._lastHeard = t;
    this._registered = false;
    const target = this._opts.url || 'the broker';
    this._setState(state, state === 'connecting' ? `connecting to ${target}` : `reconnecting to ${target}`);
    const conn = new ZmtpCurveConnection({
      transport: this._transport,
      ...this._keys,
      maxFrameBytes: this._opts.maxFrameBytes,
      onOpen: () => {
        if (this._conn === conn && this._state === 'connecting')
          this._setState('handshaking', 'CURVE handshake with the broker');
      },
      onReady: () => {
        if (this._conn !== conn) return;
        this._suspectMismatch = 0;
        this._lastHeard = now();
        this._sendRegister();
      },
      onMessage: (parts) => {
        if (this._conn === conn) this._onMessage(parts);
      },
      onClose: (info) => {
        if (this._conn === conn) this._onClose(info);
      },
    });
    this._conn = conn;
  }

  _onClose({ kind, detail, certain }) {
    this._conn = null;
    this._registered = false;
    if (kind === 'key-refused') {
      return this._finish(
        'key-refused',
        `${detail}: it is not in the broker's allow-list, or it is revoked, expired, or over its ` +
          'connection rate. An admin adds the public certificate to acl.toml.',
      );
    }
    if (kind === 'server-key-mismatch') {
      // A WELCOME that does not open is proof; a close right after HELLO is
      // what libzmq does then too, but one could be a coincidence: try once more.
      if (certain || ++this._suspectMismatch >= 2)
        return this._finish(
          'server-key-mismatch',
          `${detail}. Check the broker key: this page pins a key that this broker does not hold.`,
        );
    } else {
      this._suspectMismatch = 0;
    }
    this._lose(detail);
  }

  // The link is gone: fail what was in flight, keep what was not sent, retry later.
  _lose(why) {
    if (this._conn) {
      const c = this._conn;
      this._conn = null;
      c.close();
    }
    this._registered = false;
    ++this._stats.reconnects;
    this._failInFlight(new CurvebusError('NO_BROKER', `connection to the broker lost: ${why}`));
    this._backoff =
      this._backoff === 0 ? this._opts.reconnect.minMs : Math.min(this._backoff * 2, this._opts.reconnect.maxMs);
    if (this._suspectMismatch > 0) this._backoff = this._opts.reconnect.minMs;
    this._nextConnectAt = now() + this._backoff;
    this._setState('reconnecting', `${why}; next attempt in ${Math.round(this._backoff)} ms`);
  }

  _failInFlight(err) {
    for (const [id, p] of this._pending) {
      if (p.sub) {
        // Subscriptions are sent again at the next registration.
        this._pending.delete(id);
        continue;
      }
      if (p.sent) {
        this._pending.delete(id);
        clearTimeout(p.timer);
        p.reject(err);
      }
    }
    this._outq = this._outq.filter((o) => !o.sub);
  }

  _finish(state, detail) {
    if (this._timer) clearInterval(this._timer);
    this._timer = null;
    if (this._flushTimer) clearTimeout(this._flushTimer);
    this._flushTimer = null;
    if (this._conn) {
      const c = this._conn;
      this._conn = null;
      c.close();
    }
    this._registered = false;
    this._setState(state, detail);
    const err = this._finalError();
    for (const [, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this._pending.clear();
    this._outq = [];
    for (const w of this._connectWaiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this._connectWaiters = [];
    for (const r of this._room) r.reject(err);
    this._room = [];
    for (const d of this._drainers) d.reject(err);
    this._drainers = [];
  }

  close() {
    if (FINAL.has(this._state)) return;
    if (this._state === 'idle') {
      this._finish('closed', 'closed by the application');
      return;
    }
    if (this._registered && this._conn) {
      this._flush(true);
      try {
        this._sendOp({ bye: { reason: 'closed' } });
      } catch (e) {
        // the link is going anyway
      }
    }
    this._finish('closed', 'closed by the application');
  }

  _tick() {
    const t = now();
    if (!this._conn) {
      if (this._state === 'reconnecting' && t >= this._nextConnectAt) this._open('reconnecting');
      return;
    }
    if (!this._conn.ready) {
      if (t - this._openedAt > this._opts.handshakeTimeoutMs)
        this._lose(`no CURVE handshake with the broker within ${this._opts.handshakeTimeoutMs} ms`);
      return;
    }
    if (!this._registered) {
      if (t - this._registerSentAt > Math.max(3000, 3 * this._hbMs)) this._lose('no answer to REGISTER');
      return;
    }
    if (t - this._lastHeard > 3 * this._hbMs) {
      this._lose(`broker silent for ${Math.round(t - this._lastHeard)} ms`);
      return;
    }
    if (t - this._lastSent >= this._hbMs) this._sendOp({ heartbeat: {} });
  }

  // ------------------------------------------------------------ sending

  _encode(op) {
    return this._P.Frame.encode({ ops: [op] }).finish();
  }

  // Sends one op now, outside the queue (REGISTER, PONG, HEARTBEAT, BYE).
  _sendOp(op) {
    if (!this._conn || !this._conn.ready) return;
    this._conn.send(this._encode(op));
    this._lastSent = now();
  }

  _sendRegister() {
    this._registerId = this._nextId++;
    this._registerSentAt = now();
    this._sendOp({
      register: {
        requestId: this._registerId,
        role: this._P.Role.values[this._opts.role] ?? 0,
        provides: this._opts.provides,
        heartbeatMs: this._opts.heartbeatMs,
        clientVersion: VERSION,
        clientName: this._opts.clientName,
      },
    });
  }

  _enqueue(op, id = 0, sub = null) {
    this._outq.push({ bytes: this._encode(op), id, sub });
    this._scheduleFlush();
  }

  _scheduleFlush() {
    if (this._flushScheduled) return;
    this._flushScheduled = true;
    queueMicrotask(() => {
      this._flushScheduled = false;
      this._flush(false);
    });
  }

  // Hands queued ops to the connection, batched by concatenation (one Frame
  // of several ops, at most BATCH_BYTES), while the transport is not too far
  // behind; `force` ignores the transport's buffer (closing).
  _flush(force) {
    if (!this._registered || !this._conn) return;
    while (this._outq.length > 0) {
      if (!force && this._conn.buffered() > HIGH_WATER) {
        if (!this._flushTimer)
          this._flushTimer = setTimeout(() => {
            this._flushTimer = null;
            this._flush(false);
          }, 2);
        break;
      }
      let size = 0;
      let n = 0;
      while (n < this._outq.length && (n === 0 || size + this._outq[n].bytes.length <= BATCH_BYTES))
        size += this._outq[n++].bytes.length;
      const batch = new Uint8Array(size);
      let at = 0;
      for (let i = 0; i < n; ++i) {
        const o = this._outq[i];
        batch.set(o.bytes, at);
        at += o.bytes.length;
        if (o.id) {
          const p = this._pending.get(o.id);
          if (p) p.sent = true;
        }
        if (o.publication) ++this._stats.sent;
      }
      this._outq.splice(0, n);
      this._conn.send(batch);
      this._lastSent = now();
    }
    this._wakeWaiters();
  }

  _wakeWaiters() {
    while (this._room.length > 0 && this._outq.length < this._opts.maxQueued) this._room.shift().resolve();
    if (this._outq.length === 0 && (!this._conn || this._conn.buffered() <= HIGH_WATER)) {
      // Resolved from a macrotask: a loop of publish() + await drain() still
      // lets the event loop read the network and run the alive signal.
      const d = this._drainers;
      this._drainers = [];
      if (d.length > 0) setTimeout(() => d.forEach((x) => x.resolve()), 0);
    } else if (this._drainers.length > 0 && !this._flushTimer && this._registered) {
      this._flushTimer = setTimeout(() => {
        this._flushTimer = null;
        this._flush(false);
      }, 2);
    }
  }

  drain() {
    if (FINAL.has(this._state)) return Promise.reject(this._finalError());
    return new Promise((resolve, reject) => {
      this._drainers.push({ resolve, reject });
      this._wakeWaiters();
    });
  }

  // A request answered by the op carrying its request id.
  _request(op, id, timeoutMs, onReply) {
    if (FINAL.has(this._state) || this._state === 'idle')
      return Promise.reject(
        this._state === 'idle' ? new CurvebusError('NO_BROKER', 'not connected (call connect first)') : this._finalError(),
      );
    return new Promise((resolve, reject) => {
      const p = { resolve, reject, sent: false, timer: null, onReply };
      p.timer = setTimeout(() => {
        this._pending.delete(id);
        const i = this._outq.findIndex((o) => o.id === id);
        if (i >= 0) this._outq.splice(i, 1); // never sent: it must not go out later
        reject(
          this._registered
            ? new CurvebusError('TIMEOUT', 'no answer from the broker in time', { requestId: id })
            : new CurvebusError('NO_BROKER', `broker not reachable: ${this._detail}`, { requestId: id }),
        );
      }, timeoutMs || this._opts.requestTimeoutMs);
      this._pending.set(id, p);
      this._enqueue(op, id);
    });
  }

  publish(topic, payload, { retain = false, ack = true, contentType = '', timeoutMs = 0 } = {}) {
    const bytes = typeof payload === 'string' ? textEncoder.encode(payload) : payload;
    if (!(bytes instanceof Uint8Array))
      return Promise.reject(new CurvebusError('USAGE', 'payload must be a Uint8Array or a string'));
    const limit = this._registration ? this._registration.limits.maxMessageBytes : 0;
    if (limit > 0 && bytes.length > limit)
      return Promise.reject(
        new CurvebusError('ERROR_TOO_LARGE', `payload of ${bytes.length} bytes is over the broker's ${limit}-byte limit`, {
          topic,
        }),
      );
    const body = { topic, payload: bytes, retain, ack, contentType };
    if (ack) {
      const id = this._nextId++;
      body.requestId = id;
      return this._request({ publish: body }, id, timeoutMs, (op) => {
        const a = op.puback;
        if (!a) throw new CurvebusError('ERROR_UNSPECIFIED', `unexpected answer ${op.body} to a publish`);
        ++this._stats.sent;
        return { topic: a.topic, seq: toNumber(a.seq), delivered: a.delivered, dropped: a.dropped };
      });
    }
    if (FINAL.has(this._state) || this._state === 'idle')
      return Promise.reject(
        this._state === 'idle' ? new CurvebusError('NO_BROKER', 'not connected (call connect first)') : this._finalError(),
      );
    const push = () => {
      this._outq.push({ bytes: this._encode({ publish: body }), id: 0, sub: null, publication: true });
      this._scheduleFlush();
    };
    if (this._outq.length < this._opts.maxQueued) {
      push();
      return Promise.resolve();
    }
    if (!this._registered)
      return Promise.reject(new CurvebusError('QUEUE_FULL', `outgoing queue full (${this._opts.maxQueued} publications)`));
    // Registered: wait for room (back-pressure), like the C++ client.
    return new Promise((resolve, reject) => {
      const r = { resolve: () => (push(), resolve()), reject };
      this._room.push(r);
      setTimeout(() => {
        const i = this._room.indexOf(r);
        if (i < 0) return;
        this._room.splice(i, 1);
        reject(new CurvebusError('QUEUE_FULL', `outgoing queue full (${this._opts.maxQueued} publications)`));
      }, timeoutMs || this._opts.requestTimeoutMs);
    });
  }

  async pull(topic, { history = 0, sinceSeq = 0, maxCount = 0, timeoutMs = 0 } = {}) {
    const once = (since, max) => {
      const id = this._nextId++;
      return this._request({ pull: { requestId: id, topic, sinceSeq: since, maxCount: max } }, id, timeoutMs, (op) => {
        const r = op.pullReply;
        if (!r) throw new CurvebusError('ERROR_UNSPECIFIED', `unexpected answer ${op.body} to a pull`);
        const msgs = r.messages.map(messageOf);
        msgs.lastSeq = toNumber(r.lastSeq);
        msgs.firstKeptSeq = toNumber(r.firstKeptSeq);
        msgs.gap = !!r.gap;
        return msgs;
      });
    };
    let msgs;
    if (history > 0) {
      msgs = await once(0, 0);
      // since_seq 0 means "the latest only", so a pull after N >= 1 is the
      // only way to history: seq 1 is out of reach once a later one exists.
      if (history > 1 && msgs.lastSeq > 1) msgs = await once(Math.max(1, msgs.lastSeq - history), history);
    } else {
      msgs = await once(sinceSeq, maxCount);
    }
    if (msgs.length === 0 && sinceSeq === 0)
      throw new CurvebusError('ERROR_NOT_FOUND', `nothing published on ${topic}`, { topic });
    return msgs;
  }

  topics(pattern = '#', { timeoutMs = 0 } = {}) {
    const id = this._nextId++;
    return this._request({ topics: { requestId: id, pattern } }, id, timeoutMs, (op) => {
      if (!op.topicsReply) throw new CurvebusError('ERROR_UNSPECIFIED', `unexpected answer ${op.body} to topics`);
      return this._P.TopicsReply.toObject(op.topicsReply, { longs: Number, defaults: true });
    });
  }

  // ------------------------------------------------------------ subscriptions

  subscribe(patterns, handler, { retained = false, timeoutMs = 0 } = {}) {
    const list = (Array.isArray(patterns) ? patterns : [patterns]).map(String);
    if (list.length === 0 || typeof handler !== 'function')
      throw new CurvebusError('USAGE', 'subscribe(patterns, handler): a pattern and a handler are needed');
    if (FINAL.has(this._state)) throw this._finalError();
    const sub = { patterns: list, handler, retained, timeoutMs, acked: false, resolve: null, reject: null, id: 0 };
    const ready = new Promise((resolve, reject) => {
      sub.resolve = resolve;
      sub.reject = reject;
    });
    ready.catch(() => {}); // not an unhandled rejection when nobody awaits it
    this._subs.add(sub);
    if (this._registered) this._sendSubscribe(sub);
    const unsub = () => this._unsubscribe(sub);
    const plain = () => this._unsubscribe(sub);
    unsub.ready = ready;
    // Awaitable: resolves, after the SUBACK, to a (non-thenable) unsub function.
    unsub.then = (onOk, onFail) => ready.then(() => plain).then(onOk, onFail);
    return unsub;
  }

  _sendSubscribe(sub) {
    const id = this._nextId++;
    sub.id = id;
    const p = {
      sub,
      sent: false,
      resolve: () => {},
      reject: () => {},
      timer: null,
      onReply: (op) => this._onSubAck(sub, op),
    };
    if (!sub.acked)
      p.timer = setTimeout(() => {
        if (this._pending.get(id) !== p || !this._registered) return;
        this._pending.delete(id);
        this._subs.delete(sub);
        sub.reject(new CurvebusError('TIMEOUT', `no SUBACK for ${sub.patterns.join(' ')} in time`, { requestId: id }));
      }, sub.timeoutMs || this._opts.requestTimeoutMs);
    this._pending.set(id, p);
    this._enqueue({ subscribe: { requestId: id, patterns: sub.patterns, wantRetained: sub.retained } }, id, sub);
  }

  _onSubAck(sub, op) {
    if (op.error) {
      const e = this._errorOf(op.error);
      this._subs.delete(sub);
      sub.reject(e);
      return;
    }
    const answers = op.suback ? op.suback.answers : [];
    const R = this._P.PatternResult.values;
    const refused = answers.find((a) => a.result !== R.PATTERN_GRANTED);
    if (!refused) {
      sub.acked = true;
      sub.resolve(answers);
      return;
    }
    const code =
      refused.result === R.PATTERN_DENIED
        ? 'ERROR_DENIED'
        : refused.result === R.PATTERN_LIMIT
          ? 'ERROR_TOO_MANY_SUBSCRIPTIONS'
          : 'ERROR_INVALID_TOPIC';
    const err = new CurvebusError(code, `subscribe ${refused.pattern}: ${refused.reason || code}`, {
      requestId: sub.id,
      topic: refused.pattern,
      answers: 'subscribe',
    });
    // Undo the granted ones of this call, as the C++ client does.
    this._unsubscribe(sub);
    if (sub.acked) this._emit('error', err); // refused on a re-subscription
    else sub.reject(err);
  }

  _unsubscribe(sub) {
    if (!this._subs.delete(sub)) return Promise.resolve();
    const held = new Set();
    for (const s of this._subs) for (const p of s.patterns) held.add(p);
    const gone = sub.patterns.filter((p) => !held.has(p));
    if (gone.length === 0 || !this._registered) return Promise.resolve();
    const id = this._nextId++;
    return this._request({ unsubscribe: { requestId: id, patterns: gone } }, id, 0, (op) => op.unsuback).catch((e) => {
      if (e.code !== 'CLOSED') this._emit('error', e);
    });
  }

  // ------------------------------------------------------------ receiving

  _onMessage(parts) {
    this._lastHeard = now();
    if (parts.length !== 1) return; // the broker sends one part per message
    let frame;
    try {
      frame = this._P.Frame.decode(parts[0]);
    } catch (e) {
      return; // as the C++ client: an undecodable message is skipped
    }
    for (const op of frame.ops) {
      this._handle(op);
      if (!this._conn || FINAL.has(this._state)) return;
    }
  }

  _errorOf(e) {
    const name = this._P.ErrorCode.valuesById[e.code] || `ERROR_CODE_${e.code}`;
    let msg = e.message || name;
    if (e.topic && !msg.includes(e.topic)) msg += ` (${e.topic})`;
    return new CurvebusError(name, msg, {
      requestId: toNumber(e.requestId),
      topic: e.topic,
      answers: e.answers,
      count: toNumber(e.count),
    });
  }

  _handle(op) {
    switch (op.body) {
      case 'ping':
        this._sendOp({ pong: { nonce: op.ping.nonce } });
        return;
      case 'deliver':
        this._deliver(op.deliver);
        return;
      case 'heartbeat':
      case 'pong':
        return;
      default:
        break;
    }
    const id = requestIdOf(op);
    if (op.body === 'registered' && id === this._registerId) return this._onRegistered(op.registered);
    if (op.body === 'error') {
      ++this._stats.errors;
      const err = this._errorOf(op.error);
      const code = err.code;
      this._emit('error', err);
      if (id !== 0 && id === this._registerId) return this._lose(`registration refused: ${err.message}`);
      if (code === 'ERROR_NOT_REGISTERED' || code === 'ERROR_SESSION_EXPIRED') {
        // The broker forgot this session: register again on this connection.
        if (this._registered) {
          this._registered = false;
          this._setState('reconnecting', `${err.message}: registering again`);
          this._sendRegister();
        }
      } else if (['ERROR_KICKED', 'ERROR_REVOKED', 'ERROR_KEY_EXPIRED', 'ERROR_IDENTITY'].includes(code)) {
        return this._lose(err.message);
      }
    }
    if (id === 0) return;
    const p = this._pending.get(id);
    if (!p) return;
    this._pending.delete(id);
    clearTimeout(p.timer);
    if (p.sub) return p.onReply(op);
    if (op.body === 'error') return p.reject(this._errorOf(op.error));
    try {
      p.resolve(p.onReply(op));
    } catch (e) {
      p.reject(e);
    }
  }

  _onRegistered(r) {
    const info = {
      name: r.name,
      sessionId: r.sessionId,
      heartbeatMs: r.heartbeatMs,
      timeoutMs: r.timeoutMs,
      brokerId: r.brokerId,
      brokerVersion: r.brokerVersion,
      role: this._P.Role.valuesById[r.role] || String(r.role),
      deniedProvides: [...(r.deniedProvides || [])],
      limits: this._P.Limits.toObject(r.limits || {}, { defaults: true }),
    };
    const restarted = this._brokerId !== '' && this._brokerId !== r.brokerId;
    this._brokerId = r.brokerId;
    this._registration = info;
    this._registered = true;
    this._hbMs = Math.max(10, r.heartbeatMs || this._opts.heartbeatMs);
    this._backoff = 0;
    if (restarted) this._lastSeq.clear();
    // Re-subscribe everything (also after a broker restart: a new broker knows nothing).
    for (const sub of this._subs) this._sendSubscribe(sub);
    this._setState(
      'registered',
      `registered as ${info.name} (session ${info.sessionId})${restarted ? '; the broker restarted since the last session' : ''}`,
    );
    this._flush(false);
    const waiters = this._connectWaiters;
    this._connectWaiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.resolve(info);
    }
  }

  _deliver(d) {
    const m = messageOf(d);
    ++this._stats.received;
    if (!m.retained) {
      const last = this._lastSeq.get(m.topic) || 0;
      if (last !== 0 && m.seq > last + 1) ++this._stats.sequenceGaps;
      if (m.seq > last) this._lastSeq.set(m.topic, m.seq);
    }
    for (const sub of [...this._subs]) {
      if (!sub.patterns.some((p) => topicMatches(p, m.topic))) continue;
      try {
        sub.handler(m);
      } catch (e) {
        this._emit('error', new CurvebusError('USAGE', `a subscription handler threw: ${e.message}`, { topic: m.topic }));
      }
    }
  }
}
