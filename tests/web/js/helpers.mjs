// Shared by the Node tests of curvebus.js (node --test): the library with its
// libraries injected (TweetNaCl-js from the Debian package, protobuf.js and
// @noble/hashes from web/node_modules), and a real curvebus-broker in a
// private temporary directory with keys made by the `curvebus keygen` tool.
//
// Binaries come from the environment (ctest sets them): CURVEBUS_BROKER_BIN,
// CURVEBUS_CLI_BIN, CURVEBUS_WEB_BIN.  A missing library or binary is an
// error that says how to get it, never a skipped test.

import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const require = createRequire(import.meta.url);

const NACL_PATHS = ['/usr/share/nodejs/tweetnacl/nacl-fast.js', '/usr/lib/nodejs/tweetnacl/nacl-fast.js'];

function need(file, how) {
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: ${how}`);
  return file;
}

export async function loadLibrary() {
  const naclPath = NACL_PATHS.find((p) => fs.existsSync(p));
  if (!naclPath) throw new Error('TweetNaCl-js is missing: install node-tweetnacl (scripts/setup-deps)');
  const nacl = require(naclPath);
  const modules = path.join(REPO, 'web/node_modules');
  const how = 'run npm ci in web/ (scripts/setup-deps does)';
  const protobuf = require(need(path.join(modules, 'protobufjs/index.js'), how));
  const { blake2b } = await import(pathToFileURL(need(path.join(modules, '@noble/hashes/blake2.js'), how)).href);
  const cb = await import(pathToFileURL(path.join(REPO, 'web/static/curvebus.js')).href);
  cb.configure({ nacl, protobuf, blake2b });
  return { cb, nacl, protobuf, blake2b };
}

export async function libModule(name) {
  return import(pathToFileURL(path.join(REPO, 'web/static', name)).href);
}

export function protocolText() {
  return [
    fs.readFileSync(path.join(REPO, 'proto/curvebus.proto'), 'utf8'),
    fs.readFileSync(path.join(REPO, 'proto/robot.proto'), 'utf8'),
  ];
}

export function bin(envName) {
  const p = process.env[envName];
  if (!p) throw new Error(`${envName} is not set (ctest sets it; or export it to the built binary)`);
  return need(p, `build it (${envName})`);
}

export function tmpDir(tag) {
  return fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), `curvebus-${tag}-`));
}

export function removeDir(dir) {
  if (!process.env.CURVEBUS_KEEP_TEST_DIRS) fs.rmSync(dir, { recursive: true, force: true });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(pred, timeoutMs = 10000, stepMs = 20) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await pred()) return true;
    await sleep(stepMs);
  }
  return false;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Runs a program to its end: { code, stdout, stderr }.
export function run(file, args, { env = {}, input = null, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal, stdout, stderr });
    });
    if (input !== null) p.stdin.end(input);
    else p.stdin.end();
  });
}

// A long-running child whose output is collected: { proc, output(), lines(), stop() }.
export function start(file, args, { env = {}, logFile = null } = {}) {
  const proc = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const log = logFile ? fs.createWriteStream(logFile, { flags: 'a' }) : null;
  const take = (d) => {
    out += d;
    if (log) log.write(d);
  };
  proc.stdout.on('data', take);
  proc.stderr.on('data', take);
  const exited = new Promise((resolve) => proc.on('close', (code, sig) => resolve(code ?? sig)));
  return {
    proc,
    exited,
    output: () => out,
    lines: () => out.split('\n').filter((l) => l.length > 0),
    async stop(sig = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
      const code = await Promise.race([exited, sleep(5000).then(() => 'timeout')]);
      if (code === 'timeout') {
        proc.kill('SIGKILL');
        await exited;
      }
      if (log) log.end();
      return code;
    },
  };
}

// A curvebus-broker with its own keys and allow-list, on 127.0.0.1.
export class BrokerEnv {
  constructor(tag = 'webjs') {
    this.dir = tmpDir(tag);
    this.keysDir = path.join(this.dir, 'keys');
    fs.mkdirSync(this.keysDir, { mode: 0o700 });
    this.clients = [];
    this.endpoint = '';
    this.broker = null;
    this.runs = 0;
  }

  async keygen(name) {
    const r = await run(bin('CURVEBUS_CLI_BIN'), ['keygen', name, '--dir', this.keysDir, '--force']);
    if (r.code !== 0) throw new Error(`curvebus keygen ${name}: ${r.stderr}`);
    return this.cert(name, true);
  }

  // { publicKey, secretKey, metadata } of keys/NAME(_secret), parsed by curvebus.js.
  cert(name, secret = true) {
    return this.cb.parseZcert(fs.readFileSync(path.join(this.keysDir, secret ? `${name}_secret` : name), 'utf8'));
  }

  secretFile(name) {
    return path.join(this.keysDir, `${name}_secret`);
  }

  async setup(cb) {
    this.cb = cb;
    this.server = await this.keygen('broker');
    return this;
  }

  // Adds NAME to the allow-list with a new key pair (or the given public key).
  async addClient(name, { publish = ['#'], subscribe = ['#'], admin = false, publicKey = null } = {}) {
    const keys = publicKey ? { publicKey } : await this.keygen(name);
    this.clients.push({ name, publicKey: keys.publicKey, publish, subscribe, admin });
    return keys;
  }

  writeAcl() {
    const list = (xs) => '[' + xs.map((x) => JSON.stringify(x)).join(', ') + ']';
    let text = '';
    for (const c of this.clients)
      text +=
        `[[client]]\nname = "${c.name}"\npublic_key = "${c.publicKey}"\nrole = "client"\n` +
        `admin = ${c.admin}\npublish = ${list(c.publish)}\nsubscribe = ${list(c.subscribe)}\n\n`;
    fs.writeFileSync(path.join(this.dir, 'acl.toml'), text);
  }

  async start(extra = []) {
    this.writeAcl();
    const endpointFile = path.join(this.dir, 'endpoint');
    fs.rmSync(endpointFile, { force: true });
    ++this.runs;
    this.broker = start(
      bin('CURVEBUS_BROKER_BIN'),
      [
        '--keys', this.keysDir,
        '--acl', path.join(this.dir, 'acl.toml'),
        '--bind', this.endpoint || 'tcp://127.0.0.1:*',
        '--endpoint-file', endpointFile,
        '--retained-file', path.join(this.dir, 'retained.pb'),
        '--log-level', 'debug',
        ...extra,
      ],
      { logFile: path.join(this.dir, `broker.${this.runs}.log`) },
    );
    const ok = await waitFor(() => {
      try {
        return fs.readFileSync(endpointFile, 'utf8').endsWith('\n');
      } catch (e) {
        return false;
      }
    }, 10000);
    if (!ok) throw new Error(`the broker did not start: ${this.broker.output()}`);
    this.endpoint = fs.readFileSync(endpointFile, 'utf8').trim();
    return this;
  }

  async stop() {
    if (this.broker) await this.broker.stop();
    this.broker = null;
  }

  // Stops the broker and starts a new one on the same endpoint.
  async restart(extra = []) {
    await this.stop();
    for (let i = 0; i < 50; ++i) {
      try {
        return await this.start(extra);
      } catch (e) {
        if (this.broker) await this.broker.stop();
        await sleep(100);
      }
    }
    throw new Error('the broker did not restart');
  }

  log() {
    return this.broker ? this.broker.output() : '';
  }

  // Environment for the `curvebus` CLI acting as NAME (or with a key file).
  cliEnv(nameOrFile) {
    const key = nameOrFile.includes('/') ? nameOrFile : this.secretFile(nameOrFile);
    return {
      CURVEBUS_ENDPOINT: this.endpoint,
      CURVEBUS_SERVER_KEY: this.server.publicKey,
      CURVEBUS_KEY: key,
      CURVEBUS_HOME: path.join(this.dir, 'cli-home'),
    };
  }

  async cleanup() {
    await this.stop();
    removeDir(this.dir);
  }
}
