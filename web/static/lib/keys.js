// CURVE keys in the forms people handle: zcert certificate files (the two
// text files NAME and NAME_secret that every ZeroMQ tool and the curvebus
// tools read and write), a fresh key pair, and the short fingerprint the
// broker logs ("b2:" + 16 hex digits).
//
// Contract:
//   parseZcert(text) -> { publicKey, secretKey, metadata }
//     publicKey: Z85 (40 chars); secretKey: Z85 or '' for a public
//     certificate; metadata: { name: value } of the "metadata" section.
//     Throws a TypeError when there is no valid public-key, or when a
//     secret-key is present but is not Z85 or does not belong to the public
//     key.  Reads the format as keys/src/certificate.cpp does: whole-line '#'
//     comments only ('#' is a Z85 digit), unindented lines open a section,
//     indented `key = "value"` lines belong to it.
//   makeZcert({ publicKey, secretKey?, metadata?, name?, now? }) -> string
//     The text of the public certificate NAME, or of NAME_secret when
//     secretKey is given; byte for byte the layout curvebus keygen writes
//     (the header's date is `now`, a Date, default the current time).
//     metadata.name defaults to `name`.
//   generateKeyPair() -> { publicKey, secretKey }  (Z85, from nacl.box.keyPair)
//   publicFromSecret(secretZ85) -> publicZ85
//   keyFingerprint(publicZ85) -> 'b2:' + hex of the first 8 bytes of
//     BLAKE2b-256(raw key), as the broker's key_fingerprint(); 'b2:invalid'
//     for a string that is not a Z85 key.  Needs blake2b (deps.js).
// No state; the secret key is only ever returned to the caller.

import { nacl, blake2b } from './deps.js';
import { z85encode, z85decode, isZ85Key } from './z85.js';

function unquote(v) {
  if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v[v.length - 1] === v[0]) return v.slice(1, -1);
  return v;
}

export function parseZcert(text) {
  if (typeof text !== 'string') throw new TypeError('parseZcert: expected the text of a certificate');
  const cert = { publicKey: '', secretKey: '', metadata: {} };
  let section = '';
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed[0] === '#') continue;
    const indented = line[0] === ' ' || line[0] === '\t';
    if (!indented) {
      section = trimmed;
      continue;
    }
    const eq = trimmed.indexOf('=');
    if (eq < 0) continue;
    const key = trimmed.slice(0, eq).trim();
    const value = unquote(trimmed.slice(eq + 1).trim());
    if (section === 'curve' && key === 'public-key') cert.publicKey = value;
    else if (section === 'curve' && key === 'secret-key') cert.secretKey = value;
    else if (section === 'metadata') cert.metadata[key] = value;
  }
  if (!isZ85Key(cert.publicKey))
    throw new TypeError('the certificate holds no valid public-key (Z85, 40 characters)');
  if (cert.secretKey !== '') {
    if (!isZ85Key(cert.secretKey) || publicFromSecret(cert.secretKey) !== cert.publicKey)
      throw new TypeError('the certificate holds a secret key that does not match its public key');
  }
  return cert;
}

function two(n) {
  return String(n).padStart(2, '0');
}

export function makeZcert({ publicKey, secretKey = '', metadata = {}, name = '', now = new Date() } = {}) {
  if (!isZ85Key(publicKey)) throw new TypeError('makeZcert: publicKey is not a Z85 key');
  if (secretKey && (!isZ85Key(secretKey) || publicFromSecret(secretKey) !== publicKey))
    throw new TypeError('makeZcert: secretKey does not match publicKey');
  const meta = { ...metadata };
  if (name && meta.name === undefined) meta.name = name;
  for (const [k, v] of Object.entries(meta)) {
    if (!/^[A-Za-z0-9_.+-]+$/.test(k) || /["\n\r]/.test(String(v)))
      throw new TypeError(`makeZcert: metadata ${JSON.stringify(k)} cannot be written`);
  }
  const when =
    `${now.getUTCFullYear()}-${two(now.getUTCMonth() + 1)}-${two(now.getUTCDate())} ` +
    `${two(now.getUTCHours())}:${two(now.getUTCMinutes())}:${two(now.getUTCSeconds())}`;
  let out = `#   ****  Generated on ${when} by curvebus  ****\n`;
  if (secretKey) {
    out +=
      '#   ZeroMQ CURVE **Secret** Certificate\n' +
      '#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n';
  } else {
    out +=
      '#   ZeroMQ CURVE Public Certificate\n' +
      '#   Exchange securely, or use a secure mechanism to verify the contents\n' +
      '#   of this file after exchange. Store public certificates in your home\n' +
      '#   directory, in the .curve subdirectory.\n';
  }
  out += '\nmetadata\n';
  // Sorted like the C++ writer's std::map.
  for (const k of Object.keys(meta).sort()) out += `    ${k} = "${meta[k]}"\n`;
  out += 'curve\n';
  out += `    public-key = "${publicKey}"\n`;
  if (secretKey) out += `    secret-key = "${secretKey}"\n`;
  return out;
}

export function generateKeyPair() {
  const kp = nacl().box.keyPair();
  return { publicKey: z85encode(kp.publicKey), secretKey: z85encode(kp.secretKey) };
}

export function publicFromSecret(secretZ85) {
  const kp = nacl().box.keyPair.fromSecretKey(z85decode(secretZ85));
  return z85encode(kp.publicKey);
}

export function keyFingerprint(publicZ85) {
  if (!isZ85Key(publicZ85)) return 'b2:invalid';
  const hash = blake2b()(z85decode(publicZ85), { dkLen: 32 });
  let hex = '';
  for (let i = 0; i < 8; ++i) hex += hash[i].toString(16).padStart(2, '0');
  return 'b2:' + hex;
}
