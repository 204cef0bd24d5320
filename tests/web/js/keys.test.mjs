// Z85, zcert certificates and fingerprints in curvebus.js, against the
// published vectors (ZeroMQ RFC 32, the zmq_curve(7) test keys) and against
// certificates written by the C++ tool (`curvebus keygen`).

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadLibrary, bin, run, tmpDir, removeDir } from './helpers.mjs';

const { cb, nacl } = await loadLibrary();

const hex = (h) => Uint8Array.from(h.match(/../g), (b) => parseInt(b, 16));
const toHex = (b) => Buffer.from(b).toString('hex').toUpperCase();

// zmq_curve(7), "TEST KEY VALUES": hexadecimal and Z85 of the same keys.
const ZMQ_TEST_KEYS = [
  ['BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518', 'Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID'],
  ['7BB864B489AFA3671FBE69101F94B38972F24816DFB01B51656B3FEC8DFD0888', 'D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs'],
  ['54FCBA24E93249969316FB617C872BB0C1D1FF14800427C594CBFACF1BC2D652', 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'],
  ['8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7', 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6'],
];

test('Z85 encodes the RFC 32 example 86 4F D2 6F B5 59 F7 5B as HelloWorld and back', () => {
  assert.equal(cb.z85encode(hex('864FD26FB559F75B')), 'HelloWorld');
  assert.equal(toHex(cb.z85decode('HelloWorld')), '864FD26FB559F75B');
});

test('Z85 matches the zmq_curve(7) test keys in both directions', () => {
  for (const [h, z] of ZMQ_TEST_KEYS) {
    assert.equal(cb.z85encode(hex(h)), z);
    assert.equal(toHex(cb.z85decode(z)), h);
  }
});

test('Z85 covers the extremes of a group: all zero bytes and all 0xFF bytes', () => {
  assert.equal(cb.z85encode(new Uint8Array(4)), '00000');
  assert.equal(cb.z85encode(new Uint8Array(4).fill(0xff)), '%nSc0');
  assert.deepEqual(cb.z85decode('%nSc0'), new Uint8Array(4).fill(0xff));
});

test('Z85 round-trips random data of every length that is a multiple of 4', () => {
  for (let n = 0; n <= 64; n += 4) {
    const data = nacl.randomBytes(n);
    const text = cb.z85encode(data);
    assert.equal(text.length, (n / 4) * 5);
    assert.deepEqual(cb.z85decode(text), data);
  }
});

test('Z85 refuses bad input: wrong lengths, characters outside the alphabet, groups over 32 bits', () => {
  assert.throws(() => cb.z85encode(new Uint8Array(3)), /multiple of 4/);
  assert.throws(() => cb.z85decode('Hello'.slice(0, 4)), /multiple of 5/);
  assert.throws(() => cb.z85decode('Hell"'), /not Z85/);
  assert.throws(() => cb.z85decode('Hell~'), /not Z85/);
  assert.throws(() => cb.z85decode('Hellé'), /not Z85/);
  assert.throws(() => cb.z85decode('%nSc1'), /over 32 bits/);
  assert.throws(() => cb.z85decode('#####'), /over 32 bits/);
  assert.equal(cb.isZ85Key(ZMQ_TEST_KEYS[0][1]), true);
  assert.equal(cb.isZ85Key(ZMQ_TEST_KEYS[0][1].slice(1)), false);
});

test('the zmq_curve(7) secret keys give their public keys (TweetNaCl agrees with libsodium)', () => {
  assert.equal(cb.publicFromSecret(ZMQ_TEST_KEYS[1][1]), ZMQ_TEST_KEYS[0][1]);
  assert.equal(cb.publicFromSecret(ZMQ_TEST_KEYS[3][1]), ZMQ_TEST_KEYS[2][1]);
});

test('certificates written by curvebus keygen parse, and their secret key gives their public key', async () => {
  const dir = tmpDir('webjs-keys');
  try {
    const r = await run(bin('CURVEBUS_CLI_BIN'), ['keygen', 'robot-7', '--dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    const secretText = fs.readFileSync(path.join(dir, 'robot-7_secret'), 'utf8');
    const publicText = fs.readFileSync(path.join(dir, 'robot-7'), 'utf8');
    const secret = cb.parseZcert(secretText);
    const pub = cb.parseZcert(publicText);
    assert.equal(secret.publicKey, pub.publicKey);
    assert.equal(pub.secretKey, '');
    assert.equal(secret.metadata.name, 'robot-7');
    assert.equal(cb.publicFromSecret(secret.secretKey), secret.publicKey);
    // Written back by curvebus.js with the same date: the same text as the C++ tool's.
    const date = /Generated on (\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)/.exec(secretText).slice(1).map(Number);
    const now = new Date(Date.UTC(date[0], date[1] - 1, date[2], date[3], date[4], date[5]));
    assert.equal(cb.makeZcert({ ...secret, now }), secretText);
    assert.equal(cb.makeZcert({ publicKey: pub.publicKey, metadata: pub.metadata, now }), publicText);
  } finally {
    removeDir(dir);
  }
});

test('a generated key pair makes NAME and NAME_secret texts that parse back to the same keys', () => {
  const kp = cb.generateKeyPair();
  assert.ok(cb.isZ85Key(kp.publicKey) && cb.isZ85Key(kp.secretKey));
  assert.notEqual(kp.publicKey, kp.secretKey);
  const pubText = cb.makeZcert({ publicKey: kp.publicKey, name: 'web-user' });
  const secText = cb.makeZcert({ ...kp, name: 'web-user' });
  assert.ok(!pubText.includes(kp.secretKey), 'the public certificate holds no secret key');
  assert.match(pubText, /ZeroMQ CURVE Public Certificate/);
  assert.match(secText, /ZeroMQ CURVE \*\*Secret\*\* Certificate/);
  assert.deepEqual(cb.parseZcert(pubText), { publicKey: kp.publicKey, secretKey: '', metadata: { name: 'web-user' } });
  assert.deepEqual(cb.parseZcert(secText), { ...kp, metadata: { name: 'web-user' } });
});

test('parseZcert reads keys with # in them, CRLF line ends and single quotes', () => {
  // '#' is a Z85 digit: only whole-line comments are comments.
  let kp = null;
  for (let i = 0; i < 1000 && !kp; ++i) {
    const k = cb.generateKeyPair();
    if (k.publicKey.includes('#') && k.secretKey.includes('#')) kp = k;
  }
  assert.ok(kp, 'a key pair with # in both keys');
  const text = cb.makeZcert({ ...kp, name: 'x' }).replace(/\n/g, '\r\n').replace(/"/g, "'");
  assert.deepEqual(cb.parseZcert(text), { ...kp, metadata: { name: 'x' } });
});

test('parseZcert refuses a file with no public key, a bad key, or a secret key of another pair', () => {
  const a = cb.generateKeyPair();
  const b = cb.generateKeyPair();
  assert.throws(() => cb.parseZcert('metadata\ncurve\n'), /no valid public-key/);
  assert.throws(() => cb.parseZcert('curve\n    public-key = "tooshort"\n'), /no valid public-key/);
  const mixed = `curve\n    public-key = "${a.publicKey}"\n    secret-key = "${b.secretKey}"\n`;
  assert.throws(() => cb.parseZcert(mixed), /does not match/);
  assert.throws(() => cb.makeZcert({ publicKey: a.publicKey, secretKey: b.secretKey }), /does not match/);
  assert.throws(() => cb.parseZcert(42), /expected the text/);
});

test('keyFingerprint is b2: and the first 8 bytes of BLAKE2b-256 of the raw key, as the broker logs it', () => {
  // BLAKE2b-256 of 32 zero bytes (Python's hashlib.blake2b, digest_size=32: the same function
  // as libsodium's crypto_generichash, which the broker uses).
  assert.equal(cb.keyFingerprint(cb.z85encode(new Uint8Array(32))), 'b2:89eb0d6a8a691dae');
  assert.equal(cb.keyFingerprint('not a key'), 'b2:invalid');
  assert.match(cb.keyFingerprint(ZMQ_TEST_KEYS[0][1]), /^b2:[0-9a-f]{16}$/);
});
