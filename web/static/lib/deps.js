// Where curvebus.js finds its third-party libraries.  None is bundled and none
// is fetched from the internet: curvebus-web serves them under /vendor.
//
//   nacl      TweetNaCl-js (Debian node-tweetnacl).  Every cryptographic
//             primitive of the library: box, box.before/after, box.keyPair,
//             secretbox (= box.after with a precomputed key), randomBytes.
//             Browser: the global `nacl` set by /vendor/nacl-fast.min.js.
//   protobuf  protobuf.js (npm protobufjs, pinned by web/package-lock.json),
//             the full build with the .proto parser.  Browser: the global
//             `protobuf` set by /vendor/protobuf.min.js.
//   blake2b   BLAKE2b, for key fingerprints only: a function
//             (bytes: Uint8Array, { dkLen: 32 }) -> Uint8Array, i.e. `blake2b`
//             of @noble/hashes (npm, pinned; audited).  Browser: loaded by
//             curvebus.js from /vendor/blake2.js when it is not configured.
//
// configure({ nacl, protobuf, blake2b }) injects any of them (Node tests do:
// see tests/web/js/helpers.mjs); an injected library wins over the global.
// Each getter throws an Error naming the missing library and where it comes
// from.  Module state, set once at start-up; single-threaded use.

const injected = { nacl: null, protobuf: null, blake2b: null };

export function configure(libs = {}) {
  for (const key of Object.keys(libs)) {
    if (!(key in injected)) throw new TypeError(`configure: unknown library "${key}"`);
    injected[key] = libs[key] || null;
  }
}

function missing(what, where) {
  return new Error(`curvebus.js needs ${what}: ${where}, or configure({...}) it`);
}

export function nacl() {
  const lib = injected.nacl || globalThis.nacl;
  if (!lib || !lib.box || !lib.box.before)
    throw missing('TweetNaCl-js', 'load /vendor/nacl-fast.min.js before the page script');
  return lib;
}

export function protobuf() {
  const lib = injected.protobuf || globalThis.protobuf;
  if (!lib || typeof lib.parse !== 'function')
    throw missing('protobuf.js (full build)', 'load /vendor/protobuf.min.js before the page script');
  return lib;
}

export function blake2b() {
  const fn = injected.blake2b;
  if (typeof fn !== 'function') throw missing('BLAKE2b', 'import blake2b from /vendor/blake2.js');
  return fn;
}

export function hasBlake2b() {
  return typeof injected.blake2b === 'function';
}
