// One ZMTP 3.1 connection with the CURVE mechanism, client side, over any byte
// transport: the browser's WebSocket to curvebus-web (which relays the bytes
// to the broker's TCP port) or, in Node, a TCP socket (node-tcp.js).
//
// A transport is a function (onBytes, onClose, onOpen) -> { send, close, buffered? }:
//   onBytes(Uint8Array)  bytes from the broker, split or merged any way;
//   onClose({ code, reason, opened })  once, when the peer or the network
//                        ended it (never after our own close());
//   onOpen()             optional: the stream is up;
//   send(Uint8Array)     queue bytes for the broker (may be called before open);
//   close()              end it, no callback;
//   buffered()           optional: bytes accepted by send() and not yet written.
//
// ZmtpCurveConnection(options) drives: greeting (3.1, CURVE, as client) ->
// HELLO -> WELCOME -> INITIATE (metadata Socket-Type=DEALER, no Identity:
// the broker refuses routing ids chosen by peers) -> READY -> traffic.
// In traffic each ZeroMQ message part travels in one MESSAGE command; ZMTP
// commands (PING/PONG) travel inside MESSAGE boxes with the command flag, as
// libzmq sends them, and every PING is answered with a PONG.
//
// Callbacks (options.on*):
//   onOpen()               the transport is up (greeting sent)
//   onReady(metadata)      handshake done; send() may be used from now on
//   onMessage(parts)       one whole ZeroMQ message: an array of Uint8Array
//   onClose({ kind, detail, code, certain })  exactly once, unless close() was called.
//     kind: 'key-refused'          the broker refused our key (ZAP denial).
//                                  libzmq 4.3.4 answers INITIATE with the
//                                  ERROR command, reason "400", and then
//                                  leaves the TCP connection open: we close it.
//           'server-key-mismatch'  the server does not hold the pinned key.
//                                  certain: the WELCOME box did not open.
//                                  Not certain: the connection closed right
//                                  after HELLO, which is what libzmq 4.3.4
//                                  does with a HELLO box it cannot open (the
//                                  Client confirms it with a second attempt).
//           'unreachable'          closed before the broker's greeting came
//           'lost'                 closed after READY, or during the
//                                  handshake after INITIATE without ERROR
//           'protocol'             the broker's bytes broke ZMTP or CURVE
//                                  (bad frame, bad box, nonce not increasing)
// Single-threaded (one event loop); no timers of its own (the Client keeps
// the handshake and liveness deadlines).

import {
  ZmtpDecoder,
  ZmtpError,
  makeGreeting,
  parseGreeting,
  encodeFrame,
  parseCommand,
  commandBody,
} from './zmtp.js';
import { CurveClient, CurveError } from './curve.js';

export class ZmtpCurveConnection {
  constructor({ transport, serverKey, publicKey, secretKey, maxFrameBytes, onOpen, onReady, onMessage, onClose }) {
    this.handlers = { onOpen, onReady, onMessage, onClose };
    this.curve = new CurveClient({
      serverKey,
      publicKey,
      secretKey,
      metadata: [['Socket-Type', 'DEALER']],
    });
    // 'connecting' -> 'greeting' -> 'welcome' -> 'ready' -> 'traffic' -> 'closed'
    this.phase = 'connecting';
    this.parts = []; // parts of a multi-part message being received
    this.serverGreeting = null;
    this.decoder = new ZmtpDecoder({
      maxFrameBytes,
      onGreeting: (g) => this._onGreeting(g),
      onFrame: (f) => this._onFrame(f),
    });
    this.link = transport(
      (bytes) => this._onBytes(bytes),
      (info) => this._onTransportClose(info),
      () => this._onTransportOpen(),
    );
    // The greeting goes first, whole (ZMTP's "second case": no downgrade).
    this.phase = 'greeting';
    this.link.send(makeGreeting({ mechanism: 'CURVE', asServer: false, minor: 1 }));
  }

  get ready() {
    return this.phase === 'traffic';
  }

  // Sends one ZeroMQ message made of `parts` (Uint8Arrays).  Only when ready.
  send(...parts) {
    if (this.phase !== 'traffic') throw new Error('ZMTP connection not ready');
    for (let i = 0; i < parts.length; ++i) {
      const body = this.curve.seal(parts[i], { more: i + 1 < parts.length });
      this.link.send(encodeFrame(body));
    }
  }

  buffered() {
    return this.link.buffered ? this.link.buffered() : 0;
  }

  close() {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.link.close();
  }

  // ---------------------------------------------------------------- internals

  _end(kind, detail, code = 0, certain = true) {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.link.close();
    if (this.handlers.onClose) this.handlers.onClose({ kind, detail, code, certain });
  }

  _onTransportOpen() {
    if (this.handlers.onOpen && this.phase !== 'closed') this.handlers.onOpen();
  }

  _onTransportClose({ code = 0, reason = '', opened = true } = {}) {
    const why = reason ? ` (${reason})` : '';
    switch (this.phase) {
      case 'closed':
        return;
      case 'connecting':
      case 'greeting':
        return this._end(
          'unreachable',
          opened ? `the broker closed the connection before its greeting${why}` : `cannot reach the broker${why}`,
          code,
        );
      case 'welcome':
        return this._end(
          'server-key-mismatch',
          `the broker closed the connection after HELLO: it does not hold the pinned broker key${why}`,
          code,
          false,
        );
      case 'ready':
        return this._end('lost', `the broker closed the connection during the handshake${why}`, code);
      default:
        return this._end('lost', `connection to the broker lost${why}`, code);
    }
  }

  _onBytes(bytes) {
    if (this.phase === 'closed') return;
    try {
      this.decoder.push(bytes);
    } catch (e) {
      if (e instanceof ZmtpError || e instanceof CurveError) {
        if (e instanceof CurveError && e.kind === 'server-key') this._end('server-key-mismatch', e.message);
        else this._end('protocol', e.message);
        return;
      }
      throw e;
    }
  }

  _onGreeting(bytes) {
    const g = parseGreeting(bytes);
    if (g.mechanism !== 'CURVE')
      throw new ZmtpError(`the broker offers the ${g.mechanism || 'empty'} mechanism, CURVE expected`);
    // as-server is not checked: libzmq 4.3 sends 0 whatever the socket's role
    // (its roles come from the socket options, not the greeting).
    this.serverGreeting = g;
    this.phase = 'welcome';
    this.link.send(encodeFrame(this.curve.hello(), { command: true }));
  }

  _onFrame({ more, command, body }) {
    if (this.phase === 'closed') return;
    if (this.phase === 'welcome' || this.phase === 'ready') {
      if (!command) throw new ZmtpError('a message frame during the CURVE handshake');
      const { name, data } = parseCommand(body);
      if (name === 'ERROR') {
        const len = data.length > 0 ? data[0] : 0;
        const reason = String.fromCharCode(...data.subarray(1, 1 + len));
        this._end('key-refused', `the broker refused this key${reason ? ` (ZAP status ${reason})` : ''}`);
        return;
      }
      if (this.phase === 'welcome') {
        const initiate = this.curve.welcome(body);
        this.phase = 'ready';
        this.link.send(encodeFrame(initiate, { command: true }));
      } else {
        const metadata = this.curve.ready(body);
        this.phase = 'traffic';
        if (this.handlers.onReady) this.handlers.onReady(metadata);
      }
      return;
    }
    // Traffic: everything is a MESSAGE box; libzmq sends them as plain frames.
    const { data, more: innerMore, command: innerCommand } = this.curve.open(body);
    if (more) throw new ZmtpError('MORE set on the frame carrying a MESSAGE command');
    if (innerCommand) return this._onCommand(data);
    this.parts.push(data.slice());
    if (innerMore) {
      if (this.parts.length > 64) throw new ZmtpError('a message of more than 64 parts');
      return;
    }
    const parts = this.parts;
    this.parts = [];
    if (this.handlers.onMessage) this.handlers.onMessage(parts);
  }

  _onCommand(body) {
    const { name, data } = parseCommand(body);
    if (name === 'PING') {
      // ping = ttl (2 bytes) + context (0..16 bytes); pong echoes the context.
      if (data.length < 2 || data.length > 18) throw new ZmtpError('malformed PING');
      const pong = commandBody('PONG', data.subarray(2));
      this.link.send(encodeFrame(this.curve.seal(pong, { command: true })));
    }
    // PONG and other commands: nothing to do (any traffic is a sign of life).
  }
}
