// Z85: ZeroMQ's Base85 text encoding of binary keys (ZeroMQ RFC 32/Z85).
//
// Contract:
//   z85encode(bytes: Uint8Array) -> string
//     bytes.length must be a multiple of 4; every 4 bytes (big-endian) become
//     5 characters.  A 32-byte CURVE key becomes 40 characters.
//   z85decode(text: string) -> Uint8Array
//     text.length must be a multiple of 5 and every character must be in the
//     Z85 alphabet; a 5-character group whose value does not fit in 32 bits is
//     refused (as libzmq's zmq_z85_decode refuses it).
// Both throw a TypeError naming the problem on bad input; neither keeps state.
// This is an encoding, not cryptography: it is written here; every
// cryptographic primitive comes from TweetNaCl-js (see deps.js).

const ALPHABET =
  '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

// Character code -> digit value, -1 for characters outside the alphabet.
const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; ++i) DIGIT[ALPHABET.charCodeAt(i)] = i;

export function z85encode(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('z85encode: expected a Uint8Array');
  if (bytes.length % 4 !== 0)
    throw new TypeError(`z85encode: length ${bytes.length} is not a multiple of 4`);
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    // Unsigned 32-bit value of the group, most significant byte first.
    let value = ((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0;
    let group = '';
    for (let k = 0; k < 5; ++k) {
      group = ALPHABET[value % 85] + group;
      value = Math.floor(value / 85);
    }
    out += group;
  }
  return out;
}

export function z85decode(text) {
  if (typeof text !== 'string') throw new TypeError('z85decode: expected a string');
  if (text.length % 5 !== 0)
    throw new TypeError(`z85decode: length ${text.length} is not a multiple of 5`);
  const out = new Uint8Array((text.length / 5) * 4);
  for (let i = 0, o = 0; i < text.length; i += 5, o += 4) {
    let value = 0;
    for (let k = 0; k < 5; ++k) {
      const code = text.charCodeAt(i + k);
      const digit = code < 128 ? DIGIT[code] : -1;
      if (digit < 0)
        throw new TypeError(`z85decode: character ${JSON.stringify(text[i + k])} at ${i + k} is not Z85`);
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) throw new TypeError(`z85decode: group at ${i} is over 32 bits`);
    out[o] = (value >>> 24) & 0xff;
    out[o + 1] = (value >>> 16) & 0xff;
    out[o + 2] = (value >>> 8) & 0xff;
    out[o + 3] = value & 0xff;
  }
  return out;
}

// True when `text` is a 40-character Z85 string, i.e. a 32-byte CURVE key.
export function isZ85Key(text) {
  if (typeof text !== 'string' || text.length !== 40) return false;
  try {
    z85decode(text);
    return true;
  } catch (e) {
    return false;
  }
}
