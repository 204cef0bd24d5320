// ZMTP 3.x framing over a byte stream (ZeroMQ RFC 23 ZMTP 3.0, RFC 37 ZMTP 3.1).
//
// What a ZMTP connection looks like on the wire:
//   greeting   64 bytes: signature FF <8 padding bytes> 7F, version major.minor,
//              mechanism (20 bytes, NUL padded), as-server (1 byte), 31 zero bytes
//   frames     flags (bit 0 MORE, bit 1 LONG, bit 2 COMMAND, bits 3-7 zero),
//              size (1 byte, or 8 bytes big-endian when LONG), body
//   command    a frame with COMMAND set; body = name length (1 byte), name, data
//   metadata   properties: name length (1 byte), name, value length (4 bytes
//              big-endian), value
//
// Contract:
//   makeGreeting({ mechanism, asServer, minor }) -> Uint8Array(64)
//   parseGreeting(bytes) -> { major, minor, mechanism, asServer }   (throws ZmtpError)
//   encodeFrame(body, { more, command }) -> Uint8Array  (short frame when body
//     is at most 255 bytes, long frame otherwise, as libzmq chooses)
//   encodeCommand(name, data) -> Uint8Array (a whole command frame)
//   commandBody(name, data) -> Uint8Array (the body only)
//   parseCommand(body) -> { name, data }                             (throws ZmtpError)
//   encodeMetadata([[name, value], ...]) -> Uint8Array  (value: string or bytes)
//   parseMetadata(bytes) -> Map(lower-case name -> Uint8Array)       (throws ZmtpError)
//   new ZmtpDecoder({ maxFrameBytes, onGreeting, onFrame })
//     .push(chunk)  feeds bytes as they came (any split or merge of the
//     stream); calls onGreeting(greetingBytes) once when 64 bytes are in, then
//     onFrame({ more, command, body }) per complete frame, in order.  Throws
//     ZmtpError on a malformed stream (reserved flag bits, a command with
//     MORE, a frame over maxFrameBytes); after a throw the decoder is dead.
//     `body` is a view into the decoder's buffer: valid until the next push.
// Pure functions and one small class; no I/O, no timers, no crypto.

export class ZmtpError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ZmtpError';
  }
}

export const GREETING_BYTES = 64;
export const FLAG_MORE = 0x01;
export const FLAG_LONG = 0x02;
export const FLAG_COMMAND = 0x04;

const textEncoder = new TextEncoder();
const latin1 = (bytes) => String.fromCharCode(...bytes);

export function makeGreeting({ mechanism = 'CURVE', asServer = false, minor = 0 } = {}) {
  const g = new Uint8Array(GREETING_BYTES);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3;
  g[11] = minor;
  const mech = textEncoder.encode(mechanism);
  if (mech.length > 20) throw new ZmtpError(`mechanism "${mechanism}" is over 20 bytes`);
  g.set(mech, 12);
  g[32] = asServer ? 1 : 0;
  return g;
}

export function parseGreeting(bytes) {
  if (bytes.length < GREETING_BYTES) throw new ZmtpError('greeting shorter than 64 bytes');
  if (bytes[0] !== 0xff || bytes[9] !== 0x7f) throw new ZmtpError('not a ZMTP 3 peer (bad signature)');
  const major = bytes[10];
  const minor = bytes[11];
  if (major < 3) throw new ZmtpError(`peer speaks ZMTP ${major}.${minor}, 3.0 or later is needed`);
  let end = 12;
  while (end < 32 && bytes[end] !== 0) ++end;
  for (let i = end; i < 32; ++i)
    if (bytes[i] !== 0) throw new ZmtpError('mechanism field is not NUL padded');
  const mechanism = latin1(bytes.subarray(12, end));
  if (bytes[32] > 1) throw new ZmtpError('as-server is neither 0 nor 1');
  return { major, minor, mechanism, asServer: bytes[32] === 1 };
}

export function encodeFrame(body, { more = false, command = false } = {}) {
  const long = body.length > 255;
  const head = long ? 9 : 2;
  const out = new Uint8Array(head + body.length);
  out[0] = (more ? FLAG_MORE : 0) | (long ? FLAG_LONG : 0) | (command ? FLAG_COMMAND : 0);
  if (long) {
    const view = new DataView(out.buffer, out.byteOffset, 9);
    view.setUint32(1, Math.floor(body.length / 0x100000000));
    view.setUint32(5, body.length >>> 0);
  } else {
    out[1] = body.length;
  }
  out.set(body, head);
  return out;
}

export function commandBody(name, data = new Uint8Array(0)) {
  const n = textEncoder.encode(name);
  if (n.length < 1 || n.length > 255) throw new ZmtpError(`bad command name "${name}"`);
  const body = new Uint8Array(1 + n.length + data.length);
  body[0] = n.length;
  body.set(n, 1);
  body.set(data, 1 + n.length);
  return body;
}

export function encodeCommand(name, data) {
  return encodeFrame(commandBody(name, data), { command: true });
}

export function parseCommand(body) {
  if (body.length < 1) throw new ZmtpError('empty command');
  const len = body[0];
  if (len < 1 || 1 + len > body.length) throw new ZmtpError('truncated command name');
  const nameBytes = body.subarray(1, 1 + len);
  for (const c of nameBytes)
    if (!((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)))
      throw new ZmtpError('command name is not letters');
  return { name: latin1(nameBytes), data: body.subarray(1 + len) };
}

export function encodeMetadata(props) {
  const parts = [];
  let size = 0;
  for (const [name, value] of props) {
    const n = textEncoder.encode(name);
    const v = typeof value === 'string' ? textEncoder.encode(value) : value;
    if (n.length < 1 || n.length > 255) throw new ZmtpError(`bad metadata name "${name}"`);
    const p = new Uint8Array(1 + n.length + 4 + v.length);
    p[0] = n.length;
    p.set(n, 1);
    new DataView(p.buffer).setUint32(1 + n.length, v.length);
    p.set(v, 5 + n.length);
    parts.push(p);
    size += p.length;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function parseMetadata(bytes) {
  const props = new Map();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.length) {
    const nlen = bytes[at];
    if (nlen < 1 || at + 1 + nlen + 4 > bytes.length) throw new ZmtpError('truncated metadata');
    const name = latin1(bytes.subarray(at + 1, at + 1 + nlen)).toLowerCase();
    const vlen = view.getUint32(at + 1 + nlen);
    const vstart = at + 1 + nlen + 4;
    if (vstart + vlen > bytes.length) throw new ZmtpError('truncated metadata value');
    props.set(name, bytes.slice(vstart, vstart + vlen));
    at = vstart + vlen;
  }
  return props;
}

export class ZmtpDecoder {
  constructor({ maxFrameBytes = 64 * 1024 * 1024, onGreeting, onFrame }) {
    this.maxFrameBytes = maxFrameBytes;
    this.onGreeting = onGreeting;
    this.onFrame = onFrame;
    this.buf = new Uint8Array(4096);
    this.start = 0; // first unread byte
    this.end = 0; // one past the last byte
    this.greeted = false;
    this.dead = false;
  }

  // Appends `chunk` to the buffer, compacting or growing it as needed.
  _append(chunk) {
    const unread = this.end - this.start;
    if (this.end + chunk.length > this.buf.length) {
      if (unread + chunk.length <= this.buf.length) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let size = this.buf.length * 2;
        while (size < unread + chunk.length) size *= 2;
        const bigger = new Uint8Array(size);
        bigger.set(this.buf.subarray(this.start, this.end));
        this.buf = bigger;
      }
      this.start = 0;
      this.end = unread;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  push(chunk) {
    if (this.dead) throw new ZmtpError('decoder used after an error');
    try {
      this._append(chunk);
      this._drain();
    } catch (e) {
      this.dead = true;
      throw e;
    }
  }

  _drain() {
    if (!this.greeted) {
      // Check the signature as soon as its first byte is here, so a peer that
      // is not ZMTP at all is refused without waiting for 64 bytes.
      if (this.end > this.start && this.buf[this.start] !== 0xff)
        throw new ZmtpError('not a ZMTP 3 peer (bad signature)');
      if (this.end - this.start < GREETING_BYTES) return;
      const greeting = this.buf.slice(this.start, this.start + GREETING_BYTES);
      this.start += GREETING_BYTES;
      this.greeted = true;
      this.onGreeting(greeting);
    }
    while (this.end - this.start >= 2 && !this.dead) {
      const flags = this.buf[this.start];
      if (flags & 0xf8) throw new ZmtpError(`reserved frame flag bits set (0x${flags.toString(16)})`);
      const long = (flags & FLAG_LONG) !== 0;
      const command = (flags & FLAG_COMMAND) !== 0;
      const more = (flags & FLAG_MORE) !== 0;
      if (command && more) throw new ZmtpError('command frame with MORE set');
      let head = 2;
      let size = this.buf[this.start + 1];
      if (long) {
        if (this.end - this.start < 9) return;
        head = 9;
        const view = new DataView(this.buf.buffer, this.buf.byteOffset + this.start + 1, 8);
        const hi = view.getUint32(0);
        const lo = view.getUint32(4);
        if (hi > 0x1fffff) throw new ZmtpError('frame size over 2^53');
        size = hi * 0x100000000 + lo;
      }
      if (size > this.maxFrameBytes)
        throw new ZmtpError(`frame of ${size} bytes is over the ${this.maxFrameBytes}-byte limit`);
      if (this.end - this.start < head + size) return;
      const body = this.buf.subarray(this.start + head, this.start + head + size);
      this.start += head + size;
      this.onFrame({ more, command, body });
    }
    if (this.start === this.end) this.start = this.end = 0;
  }
}
