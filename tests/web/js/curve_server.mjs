// Test-only: the server side of CurveZMQ (RFC 26) and a fake broker that
// speaks ZMTP + CURVE over an in-memory transport, so the client's state
// machine can be driven step by step and fed bad input on purpose.  The
// real-broker tests (interop.test.mjs) check the same client against libzmq.

import { nacl } from '../../../web/static/lib/deps.js';
import * as z from '../../../web/static/lib/zmtp.js';

const ascii = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));
export const concat = (...as) => {
  const out = new Uint8Array(as.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of as) {
    out.set(a, at);
    at += a.length;
  }
  return out;
};
const nonce = (prefix, tail) => concat(ascii(prefix), tail);
export function u64(n) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}
const readU64 = (b) => new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);

export class TestCurveServer {
  constructor(keyPair = nacl().box.keyPair()) {
    this.keys = keyPair; // S, s
    this.cookieKey = nacl().randomBytes(32);
    this.nonce = 1n;
    this.clientNonce = 0n;
  }

  // HELLO body -> WELCOME body.  Throws if the HELLO is not valid.
  welcome(helloBody) {
    const { name, data } = z.parseCommand(helloBody);
    if (name !== 'HELLO' || data.length !== 194) throw new Error(`bad HELLO (${name}, ${data.length})`);
    if (data[0] !== 1 || data[1] !== 0) throw new Error('HELLO version is not 1.0');
    if (data.subarray(2, 74).some((b) => b !== 0)) throw new Error('HELLO padding is not zero');
    this.clientTransient = data.slice(74, 106);
    const n = data.subarray(106, 114);
    const sig = nacl().box.open(data.subarray(114), nonce('CurveZMQHELLO---', n), this.clientTransient, this.keys.secretKey);
    if (!sig || sig.some((b) => b !== 0)) throw new Error('HELLO signature box does not open to 64 zeros');
    this.helloNonce = readU64(n);
    return this.welcomeTo(this.clientTransient);
  }

  // A WELCOME for the client transient key C', without looking at any HELLO
  // (what a server holding another key than the pinned one could still send).
  welcomeTo(clientTransient) {
    this.clientTransient = clientTransient;
    this.transient = nacl().box.keyPair(); // S', s'
    const cookieNonce = nacl().randomBytes(16);
    const cookie = concat(
      cookieNonce,
      nacl().secretbox(concat(this.clientTransient, this.transient.secretKey), nonce('COOKIE--', cookieNonce), this.cookieKey),
    );
    const welcomeNonce = nacl().randomBytes(16);
    const box = nacl().box(
      concat(this.transient.publicKey, cookie),
      nonce('WELCOME-', welcomeNonce),
      this.clientTransient,
      this.keys.secretKey,
    );
    return z.commandBody('WELCOME', concat(welcomeNonce, box));
  }

  // INITIATE body -> { clientKey, metadata: Map, ready: READY body }.
  initiate(body, readyMetadata = [['Socket-Type', 'ROUTER']]) {
    const { name, data } = z.parseCommand(body);
    if (name !== 'INITIATE') throw new Error(`INITIATE expected, got ${name}`);
    const cookie = data.subarray(0, 96);
    const opened = nacl().secretbox.open(cookie.subarray(16), nonce('COOKIE--', cookie.subarray(0, 16)), this.cookieKey);
    if (!opened) throw new Error('cookie does not open');
    this.shared = nacl().box.before(opened.subarray(0, 32), opened.subarray(32));
    const n = data.subarray(96, 104);
    this.initiateNonce = readU64(n);
    const plain = nacl().box.open.after(data.subarray(104), nonce('CurveZMQINITIATE', n), this.shared);
    if (!plain) throw new Error('INITIATE box does not open');
    const clientKey = plain.slice(0, 32);
    const vouch = nacl().box.open(plain.subarray(48, 128), nonce('VOUCH---', plain.subarray(32, 48)), clientKey, this.transient.secretKey);
    if (!vouch) throw new Error('vouch does not open');
    this.vouch = vouch;
    this.clientNonce = this.initiateNonce;
    const metadata = z.parseMetadata(plain.subarray(128));
    const rn = u64(this.nonce++);
    const ready = z.commandBody(
      'READY',
      concat(rn, nacl().box.after(z.encodeMetadata(readyMetadata), nonce('CurveZMQREADY---', rn), this.shared)),
    );
    return { clientKey, metadata, ready };
  }

  // A MESSAGE from the server; `n` forces a nonce (to replay or go backwards).
  seal(data, { more = false, command = false, n = null } = {}) {
    const counter = n === null ? this.nonce++ : BigInt(n);
    const tail = u64(counter);
    const box = nacl().box.after(concat(Uint8Array.of((more ? 1 : 0) | (command ? 2 : 0)), data), nonce('CurveZMQMESSAGES', tail), this.shared);
    return concat(Uint8Array.of(7), ascii('MESSAGE'), tail, box);
  }

  // A MESSAGE from the client -> { data, more, command, n }.
  open(body) {
    const { name } = z.parseCommand(body);
    if (name !== 'MESSAGE') throw new Error(`MESSAGE expected, got ${name}`);
    const tail = body.subarray(8, 16);
    const n = readU64(tail);
    if (n <= this.clientNonce) throw new Error(`client nonce ${n} not above ${this.clientNonce}`);
    this.clientNonce = n;
    const plain = nacl().box.open.after(body.subarray(16), nonce('CurveZMQMESSAGEC', tail), this.shared);
    if (!plain) throw new Error('client MESSAGE does not open');
    return { data: plain.subarray(1), more: (plain[0] & 1) !== 0, command: (plain[0] & 2) !== 0, n };
  }
}

// A fake broker on an in-memory transport.  `script` decides what it does:
//   onHello(server, body)    -> 'welcome' (default) | 'close' | 'error' | Uint8Array to send
//   onInitiate(server, body) -> 'ready' (default) | 'close' | 'error'
//   onMessage(broker, msg)   traffic from the client, decrypted
// broker.send(bytes) writes raw bytes to the client, cut into chunks of
// `chunk` bytes (default: whole); broker.close() closes as the network would.
export function fakeBroker(script = {}, { chunk = 0, greeting = null } = {}) {
  const server = new TestCurveServer(script.keys);
  const broker = {
    server,
    received: [], // client frames after the greeting: { command, more, body }
    messages: [],
    clientGreeting: null,
    open: false,
    closedByClient: false,
    toClient: null,
    closeClient: null,
    // Asynchronous like a real network: never inside the client's own call.
    send(bytes) {
      const copy = bytes.slice();
      queueMicrotask(() => {
        if (!this.toClient) return;
        if (!chunk) return this.toClient(copy);
        for (let at = 0; at < copy.length; at += chunk) if (this.toClient) this.toClient(copy.slice(at, at + chunk));
      });
    },
    sendFrame(body, opts) {
      this.send(z.encodeFrame(body, opts));
    },
    close(info = {}) {
      const cb = this.closeClient;
      queueMicrotask(() => {
        this.toClient = null;
        if (cb) cb({ code: 0, reason: 'closed by the fake broker', opened: true, ...info });
      });
    },
  };
  let phase = 'hello';
  const decoder = new z.ZmtpDecoder({
    onGreeting: (g) => {
      broker.clientGreeting = g;
    },
    onFrame: (f) => {
      const frame = { command: f.command, more: f.more, body: f.body.slice() };
      broker.received.push(frame);
      if (phase === 'hello') {
        const what = script.onHello ? script.onHello(server, frame.body) : 'welcome';
        if (what === 'welcome') {
          broker.sendFrame(server.welcome(frame.body), { command: true });
          phase = 'initiate';
        } else if (what === 'close') broker.close();
        else if (what === 'error') broker.sendFrame(z.commandBody('ERROR', concat(Uint8Array.of(3), ascii('400'))), { command: true });
        else if (what instanceof Uint8Array) {
          broker.send(what);
          phase = 'initiate';
        }
      } else if (phase === 'initiate') {
        const what = script.onInitiate ? script.onInitiate(server, frame.body) : 'ready';
        if (what === 'ready') {
          broker.initiate = server.initiate(frame.body);
          broker.sendFrame(broker.initiate.ready, { command: true });
          phase = 'traffic';
        } else if (what === 'close') broker.close();
        else if (what === 'error') broker.sendFrame(z.commandBody('ERROR', concat(Uint8Array.of(3), ascii('400'))), { command: true });
      } else {
        const msg = server.open(frame.body);
        broker.messages.push(msg);
        if (script.onMessage) script.onMessage(broker, msg);
      }
    },
  });
  const transport = (onBytes, onClose, onOpen) => {
    broker.toClient = onBytes;
    broker.closeClient = onClose;
    queueMicrotask(() => {
      broker.open = true;
      if (onOpen) onOpen();
      broker.send(greeting || z.makeGreeting({ mechanism: 'CURVE', minor: 1 }));
    });
    return {
      send(bytes) {
        const copy = bytes.slice();
        queueMicrotask(() => {
          if (!broker.closedByClient) decoder.push(copy);
        });
      },
      close() {
        broker.closedByClient = true;
        broker.toClient = null;
      },
      buffered: () => 0,
    };
  };
  broker.transport = transport;
  return broker;
}
