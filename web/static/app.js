// The curvebus control page: drive a robot from the browser as a CurveZMQ peer.
//
// What it does: reads /config.json (the broker's public key, pinned, and the
// relay path), loads the user's key (a NAME_secret certificate, or one made
// here), connects with curvebus.js through the curvebus-web relay, lists robots
// from $SYS/presence/# and robot/+/status, and drives the selected robot:
// a motion command on press, keepalives every KEEPALIVE_MS while the button or
// key is held (the agent's dead-man time is 500 ms), STOP on release.
//
// Invariants: every string that came from the bus or from a file reaches the
// page through textContent or an attribute, never as markup (no innerHTML);
// the secret key lives in `app.key` only, and in localStorage only while
// "remember on this device" is ticked; it is given to the Client and to
// nothing else.  Single-threaded (the page's event loop).
import {
  Client,
  loadProtocol,
  parseZcert,
  makeZcert,
  generateKeyPair,
  keyFingerprint,
  encodeRobotCommand,
  decodeRobotPayload,
} from './curvebus.js';

const KEEPALIVE_MS = 150;        // teleop's period: three renewals per dead-man time
const PLOT_WINDOW_MS = 60_000;   // the plot shows at most the last minute...
const PLOT_MIN_SPAN_MS = 10_000; // ...and at least 10 s, growing with the data
const MAX_ACK_ROWS = 100;
const ACK_WAIT_MS = 15_000;      // a command with no ack by then is marked "no ack"
const MAX_KEY_FILE = 64 * 1024;
const STORE_KEY = 'curvebus.key.v1';
const STORE_BROKER = 'curvebus.brokerKey.v1';

const $ = (id) => document.getElementById(id);
const ui = {
  who: $('who'), conn: $('conn'), connText: $('conn-text'), estop: $('estop'),
  latched: $('latched'), latchedText: $('latched-text'), clear: $('clear-estop'),
  notice: $('notice'), driveRobot: $('drive-robot'), pad: $('pad'),
  distance: $('distance'), angle: $('angle'), speed: $('speed'),
  distanceOut: $('distance-out'), angleOut: $('angle-out'), speedOut: $('speed-out'),
  robots: $('robots'), robotsEmpty: $('robots-empty'), others: $('others'),
  tFwd: $('t-fwd'), tRev: $('t-rev'), tTicksLr: $('t-ticks-lr'), tTicks: $('t-ticks'),
  tSample: $('t-sample'), plot: $('plot'), acks: $('acks'), keepalives: $('keepalives'),
  keyState: $('key-state'), keyFile: $('key-file'), drop: $('drop'), remember: $('remember'),
  forget: $('forget'), connect: $('connect'), disconnect: $('disconnect'),
  genName: $('gen-name'), generate: $('generate'), genLinks: $('gen-links'),
  brokerFp: $('broker-fp'), relayUrl: $('relay-url'), version: $('version'),
  setRelay: $('set-relay'), setKey: $('set-key'), setApply: $('set-apply'),
};

const app = {
  config: { relayUrl: '', brokerKey: '', version: '' },
  proto: null,
  key: null,            // { name, publicKey, secretKey, certText }
  client: null,
  state: 'idle',
  name: '',
  robots: new Map(),    // id -> { id, presence, status, statusAt }
  others: new Map(),    // name -> presence of a name that is not a robot agent
  selected: '',
  robotUnsubs: [],
  pending: new Map(),   // command id -> { action, sentAt, row, keepalive }
  acksSeen: new Set(),  // recent acks, against duplicates
  hold: null,           // { action, source, id, timer, refused }
  series: [],           // { t, dist, ticks }
  keepalivesOk: 0,
  idPrefix: 'web-' + Math.random().toString(36).slice(2, 8),
  seq: 0,
  localLatch: false,
  lastEstopPress: 0,
};

// ------------------------------------------------------------------ text

const STATE_TEXT = {
  idle: () => 'Load your key to connect',
  connecting: () => 'Connecting to the relay…',
  handshaking: () => 'Checking the broker’s key (CURVE handshake)…',
  registered: () => `Registered as ${app.name || '?'}`,
  reconnecting: () => 'Connection lost — reconnecting…',
  'key-refused': () =>
    'Key refused: the broker does not know this key. Send your public certificate to an admin for acl.toml.',
  'server-key-mismatch': () =>
    'Broker key mismatch: the server did not prove it holds the pinned broker key. Do not trust this connection.',
  closed: () => 'Disconnected',
  'no-config': () => 'No broker key: fill in Broker → Connection settings',
};

const RESULT_TEXT = {
  RESULT_OK: 'OK',
  RESULT_REJECTED_STALE: 'Refused: stale command (too old when it arrived — is this device’s clock right?)',
  RESULT_REJECTED_DUPLICATE: 'Refused: this command id was already used',
  RESULT_REJECTED_INVALID: 'Refused: not a valid command',
  RESULT_REJECTED_NO_LEASE: 'Refused: no lease — another controller is driving',
  RESULT_REJECTED_ESTOP_LATCHED: 'Refused: e-stop latched — press Clear first',
  RESULT_ARDUINO_BAD_PACKET: 'The Arduino reported a bad packet',
  RESULT_ARDUINO_BAD_CHECKSUM: 'The Arduino reported a bad checksum',
  RESULT_ARDUINO_BAD_COMMAND: 'The Arduino does not know this command',
  RESULT_TIMEOUT: 'No answer from the Arduino',
  RESULT_SERIAL_DOWN: 'The serial link to the Arduino is down',
  RESULT_SUPERSEDED: 'Not run: superseded by a STOP',
  RESULT_REJECTED_NOT_ALLOWED: 'Refused: this key may not clear an e-stop',
};

const OFFLINE_WHY = {
  closed: 'left',
  timeout: 'timed out',
  kicked: 'kicked by an admin',
  revoked: 'key revoked',
  identity: 'identity check failed',
  key_expired: 'key expired',
};

function brokerRefusalText(err) {
  const code = String((err && err.code) || '');
  if (code.includes('DENIED')) return 'Refused by the broker: ACL denied (this key may not publish here)';
  if (code.includes('RATE')) return 'Refused by the broker: too many messages (rate limited)';
  if (code.includes('TOO_LARGE')) return 'Refused by the broker: too large';
  if (code.includes('NOT_REGISTERED')) return 'Not sent: not registered with the broker';
  return `Not sent: ${(err && err.message) || code || 'error'}`;
}

function clockTime(ms = Date.now()) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

let noticeTimer = 0;
function notice(text, kind = 'warn') {
  ui.notice.textContent = text;
  ui.notice.dataset.kind = kind;
  ui.notice.classList.remove('hidden');
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => ui.notice.classList.add('hidden'), 8000);
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

// ---------------------------------------------------------- robot payloads
// robot.proto through curvebus.js (camelCase fields, enums as names).

const snake = (str) => str.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

function decode(topic, bytes) {
  return decodeRobotPayload(app.proto, topic, bytes);
}

// ------------------------------------------------------------------- config

async function loadConfig() {
  let cfg = null;
  try {
    const r = await fetch('config.json', { cache: 'no-store' });
    if (r.ok) cfg = await r.json();
  } catch (e) {
    cfg = null;
  }
  if (cfg) {
    const wsUrl = new URL(cfg.relayPath || '/bus', location.href);
    wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
    app.config.relayUrl = wsUrl.href;
    app.config.version = String(cfg.version || '');
    app.config.brokerKey = String(cfg.brokerKey || '');
  }
  // A broker key pinned on this device wins over what the relay announces:
  // a relay that swaps it then fails the handshake instead of being trusted.
  const pinned = storageGet(STORE_BROKER);
  if (pinned && app.config.brokerKey && pinned !== app.config.brokerKey) {
    notice('The relay announces a different broker key than the one pinned on this device; ' +
      'using the pinned key. If the broker key was rotated, set it under Connection settings.', 'error');
    app.config.brokerKey = pinned;
  } else if (pinned && !app.config.brokerKey) {
    app.config.brokerKey = pinned;
  }
  showConfig();
  if (!app.config.brokerKey) setState('no-config');
}

function showConfig() {
  ui.relayUrl.textContent = app.config.relayUrl || '–';
  ui.version.textContent = app.config.version || '–';
  ui.setRelay.value = app.config.relayUrl;
  ui.setKey.value = app.config.brokerKey;
  ui.brokerFp.textContent = app.config.brokerKey ? fingerprint(app.config.brokerKey) : '–';
}

// The key's fingerprint as the broker logs it, or why there is none.
function fingerprint(key) {
  try {
    const fp = keyFingerprint(key);
    return fp === 'b2:invalid' ? 'not a valid key' : fp;
  } catch (e) {
    return `fingerprint unavailable (${e.message})`;
  }
}

function storageGet(k) {
  try {
    return localStorage.getItem(k);
  } catch (e) {
    return null;
  }
}
function storageSet(k, v) {
  try {
    if (v === null) localStorage.removeItem(k);
    else localStorage.setItem(k, v);
  } catch (e) {
    notice('This browser does not let the page store anything: the key stays in memory only.');
  }
}

// --------------------------------------------------------------------- keys

function useKeyText(text, fileName) {
  let cert;
  try {
    cert = parseZcert(text);
  } catch (e) {
    notice(`Not a certificate: ${e.message}`, 'error');
    return false;
  }
  if (!cert.secretKey) {
    notice('That is a public certificate: load the NAME_secret file (it holds the secret key).', 'error');
    return false;
  }
  const fromFile = String(fileName || '').replace(/\.txt$/, '').replace(/_secret$/, '');
  app.key = {
    name: (cert.metadata && cert.metadata.name) || fromFile || 'key',
    publicKey: cert.publicKey,
    secretKey: cert.secretKey,
    certText: text,
  };
  if (ui.remember.checked) rememberKey();
  showKey();
  return true;
}

function rememberKey() {
  if (!app.key) return;
  storageSet(STORE_KEY, JSON.stringify({ name: app.key.name, cert: app.key.certText }));
  if (app.config.brokerKey) storageSet(STORE_BROKER, app.config.brokerKey);
}

function showKey() {
  const k = app.key;
  placeKeyPanel();
  ui.forget.disabled = !k && !storageGet(STORE_KEY);
  ui.connect.disabled = !k;
  if (!k) {
    ui.keyState.textContent = 'No key loaded. It stays in this page’s memory and is never sent anywhere.';
    ui.who.textContent = 'no key loaded';
    return;
  }
  const fp = fingerprint(k.publicKey);
  const where = ui.remember.checked ? 'remembered on this device' : 'in this page’s memory only';
  ui.keyState.textContent = `Key “${k.name}” (${fp}), ${where}.`;
  ui.who.textContent = `${k.name} · ${fp}`;
}

function readKeyFile(file) {
  if (!file) return;
  if (file.size > MAX_KEY_FILE) {
    notice('That file is too large to be a certificate.', 'error');
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    if (useKeyText(String(reader.result), file.name)) connect();
  };
  reader.onerror = () => notice('Could not read that file.', 'error');
  reader.readAsText(file);
}

function forgetKey() {
  storageSet(STORE_KEY, null);
  storageSet(STORE_BROKER, null);
  ui.remember.checked = false;
  disconnect();
  app.key = null;
  ui.keyFile.value = '';
  showKey();
  setState('idle');
}

let genUrls = [];
function generateKey() {
  const name = ui.genName.value.trim();
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    notice('A name is letters, digits, “_”, “.” or “-” (up to 64).', 'error');
    return;
  }
  const pair = generateKeyPair();
  const publicText = makeZcert({ publicKey: pair.publicKey, metadata: { name } });
  const secretText = makeZcert({ publicKey: pair.publicKey, secretKey: pair.secretKey, metadata: { name } });
  for (const u of genUrls) URL.revokeObjectURL(u);
  genUrls = [];
  ui.genLinks.replaceChildren();
  const link = (text, fileName, body) => {
    // octet-stream: browsers keep the name as given (text/plain gets a .txt added).
    const url = URL.createObjectURL(new Blob([body], { type: 'application/octet-stream' }));
    genUrls.push(url);
    return el('a', { href: url, download: fileName, text, class: 'button', 'data-testid': `download-${fileName}` });
  };
  ui.genLinks.append(
    link(`Download public certificate “${name}” (for the admin)`, name, publicText),
    link(`Download secret certificate “${name}_secret” (keep it private)`, `${name}_secret`, secretText),
  );
  useKeyText(secretText, `${name}_secret`);
  disconnect();
  notice(`Key pair “${name}” made. An admin adds the public certificate to acl.toml; then press Connect.`, 'info');
}

// --------------------------------------------------------------- connection

function setState(state, detail = '') {
  app.state = state;
  ui.conn.dataset.state = state;
  const f = STATE_TEXT[state];
  ui.connText.textContent = f ? f() : state;
  ui.conn.title = detail || '';
  updateControls();
  placeKeyPanel();
}

// Until a key is loaded (or while it is refused) the key panel comes first.
function placeKeyPanel() {
  document.body.classList.toggle('needs-key', !app.key || app.state === 'key-refused');
}

async function ensureProtocol() {
  if (app.proto) return;
  app.proto = await loadProtocol({ base: 'proto/' });
}

async function connect() {
  if (!app.key) return;
  if (!app.config.brokerKey || !app.config.relayUrl) {
    setState('no-config');
    return;
  }
  disconnect();
  try {
    await ensureProtocol();
  } catch (e) {
    notice(`Cannot load the protocol: ${e.message}`, 'error');
    return;
  }
  let client;
  try {
    client = new Client({
      url: app.config.relayUrl,
      serverKey: app.config.brokerKey,
      publicKey: app.key.publicKey,
      secretKey: app.key.secretKey,
      clientName: 'web',
      heartbeatMs: 1000,
      protocol: app.proto,
      reconnect: { minMs: 250, maxMs: 5000 },
    });
  } catch (e) {
    notice(`Cannot connect: ${e.message}`, 'error');
    return;
  }
  app.client = client;
  client.on('state', ({ state, detail }) => {
    if (app.client !== client) return;
    if (state === 'registered') app.name = client.name || app.name;
    if (state !== 'registered') releaseHold(false);
    setState(state, detail);
  });
  client.on('error', (err) => {
    if (app.client !== client) return;
    if (err && err.code && String(err.code).includes('DENIED') && !err.requestId)
      notice(`The broker refused: ${err.message}`, 'error');
  });
  setState('connecting');
  try {
    const reg = await client.connect();
    if (app.client !== client) return;
    app.name = (reg && reg.name) || client.name || app.key.name;
    setState('registered');
    subscribeDirectory(client);
    if (app.selected) selectRobot(app.selected, true);
  } catch (e) {
    if (app.client !== client) return;
    // The state event has said why (key refused, key mismatch); say the rest.
    if (app.state === 'connecting' || app.state === 'handshaking' || app.state === 'registered')
      setState('closed', e && e.message);
  }
}

function disconnect() {
  releaseHold(true);
  const c = app.client;
  app.client = null;
  app.robotUnsubs = [];
  if (c) {
    try {
      c.close();
    } catch (e) {
      /* already closed */
    }
    setState('closed');
  }
}

// Subscribes at once (curvebus.js keeps the subscription across reconnects)
// and returns a plain function that ends it; a refusal (ACL) is reported when
// the broker answers.
function subscribe(client, pattern, onMessage, retained = true) {
  let unsub;
  try {
    unsub = client.subscribe(pattern, onMessage, { retained });
  } catch (e) {
    notice(`Cannot subscribe to ${pattern}: ${e.message}`, 'warn');
    return () => {};
  }
  Promise.resolve(unsub.ready).catch((e) => {
    if (app.client === client) notice(`Cannot subscribe to ${pattern}: ${e.message}`, 'warn');
  });
  return () => unsub();
}

function subscribeDirectory(client) {
  subscribe(client, '$SYS/presence/#', onPresence);
  subscribe(client, 'robot/+/status', onStatus);
}

// ------------------------------------------------------------------- robots

const textDecoder = new TextDecoder();

function robotEntry(id) {
  let r = app.robots.get(id);
  if (!r) {
    r = { id, presence: null, status: null, statusAt: 0 };
    app.robots.set(id, r);
  }
  return r;
}

function onPresence(msg) {
  let p;
  try {
    p = JSON.parse(textDecoder.decode(msg.payload));
  } catch (e) {
    return;
  }
  const name = String(p.name || msg.topic.split('/').slice(2).join('/'));
  if (!name) return;
  const role = String(p.role || '');
  if (role === 'ROLE_AGENT' || role === '3' || app.robots.has(name)) {
    robotEntry(name).presence = p;
    app.others.delete(name);
    if (!app.selected && p.state === 'online') selectRobot(name);
  } else {
    app.others.set(name, p);
  }
  renderRobots();
}

function onStatus(msg) {
  const parts = msg.topic.split('/');
  if (parts.length !== 3 || parts[0] !== 'robot' || parts[2] !== 'status') return;
  const s = decode(msg.topic, msg.payload);
  if (!s) return;
  const r = robotEntry(parts[1]);
  r.status = s;
  r.statusAt = Date.now();
  if (r.id === app.selected && s.estopLatched === false) app.localLatch = false;
  if (!app.selected) selectRobot(r.id);
  renderRobots();
  updateLatch();
}

function presenceText(p) {
  if (!p) return { online: false, text: 'not seen' };
  if (p.state === 'online') return { online: true, text: 'online' };
  const why = OFFLINE_WHY[p.reason] || p.reason || '';
  return { online: false, text: why ? `offline (${why})` : 'offline' };
}

function statusParts(s) {
  if (!s) return [['status', 'no status yet']];
  const link = s.serialUp ? `serial ${s.state || 'up'}` : `serial down${s.state ? ` (${s.state})` : ''}`;
  return [
    ['serial', link],
    ['moving', s.moving ? 'moving' : 'stopped'],
    ['lease', s.leaseHolder ? `driven by ${s.leaseHolder}` : 'lease free'],
    ['estop', s.estopLatched ? 'E-STOP LATCHED' : 'no e-stop'],
  ];
}

function renderRobots() {
  const items = [];
  const ids = [...app.robots.keys()].sort();
  for (const id of ids) {
    const r = app.robots.get(id);
    const pres = presenceText(r.presence);
    const li = el('li', {
      class: `robot${id === app.selected ? ' selected' : ''}${pres.online ? ' online' : ''}`,
      'data-testid': `robot-${id}`,
      'data-online': String(pres.online),
    });
    const pick = el('button', { type: 'button', class: 'robot-pick', text: id });
    pick.addEventListener('click', () => selectRobot(id));
    const badge = el('span', { class: `badge ${pres.online ? 'on' : 'off'}`, text: pres.text, 'data-testid': `robot-${id}-presence` });
    const st = el('span', { class: 'robot-status', 'data-testid': `robot-${id}-status` });
    for (const [k, v] of statusParts(r.status)) {
      const part = el('span', { class: `part st-${k}`, text: v });
      if (k === 'estop' && r.status && r.status.estopLatched) part.classList.add('alarm');
      if (k === 'serial' && r.status && !r.status.serialUp) part.classList.add('alarm');
      st.append(part);
    }
    if (r.status && r.status.lastError) st.append(el('span', { class: 'part error', text: r.status.lastError }));
    li.append(pick, badge, st);
    items.push(li);
  }
  ui.robots.replaceChildren(...items);
  ui.robotsEmpty.classList.toggle('hidden', items.length > 0);
  const others = [...app.others.values()].filter((p) => p.state === 'online').map((p) => p.name).sort();
  ui.others.textContent = others.length ? `Also online: ${others.join(', ')}` : '';
}

function selectRobot(id, force = false) {
  if (app.selected === id && !force) return;
  if (app.selected !== id) {
    releaseHold(true);
    app.series = [];
    app.localLatch = false;
    showTelemetry(null);
    drawPlot();
  }
  app.selected = id;
  ui.driveRobot.textContent = id;
  for (const u of app.robotUnsubs) {
    try {
      u();
    } catch (e) {
      /* gone with its connection */
    }
  }
  app.robotUnsubs = [];
  renderRobots();
  updateLatch();
  updateControls();
  const client = app.client;
  if (!client || app.state !== 'registered') return;
  const base = `robot/${id}/`;
  app.robotUnsubs = [
    subscribe(client, base + 'ack', onAck, false),
    subscribe(client, base + 'telemetry', onTelemetry, true),
    subscribe(client, base + 'status', onStatus, true),  // also when robot/+/status is not allowed
  ];
}

// ----------------------------------------------------------------- commands

function motionBody(action) {
  const speedPct = Number(ui.speed.value);
  if (action === 'forward' || action === 'backward') return { distanceCm: Number(ui.distance.value), speedPct };
  return { angleDeg: Number(ui.angle.value), speedPct };
}

// Sends one Command to the selected robot; returns its id, or '' when it
// could not be sent.  `field` is the oneof member (camelCase).
function sendCommand(field, body, { log = true, topicSuffix = 'cmd' } = {}) {
  const client = app.client;
  const robot = app.selected;
  if (!client || app.state !== 'registered' || !robot) {
    if (log) notice(robot ? 'Not connected: the command was not sent.' : 'No robot selected.', 'error');
    return '';
  }
  const id = `${app.idPrefix}-${++app.seq}`;
  let bytes;
  try {
    bytes = encodeRobotCommand(app.proto, { id, issuedUs: Date.now() * 1000, [field]: body });
  } catch (e) {
    notice(`Cannot encode the command: ${e.message}`, 'error');
    return '';
  }
  const action = snake(field);
  const entry = { action, sentAt: performance.now(), row: null, keepalive: field === 'keepalive' };
  if (log) entry.row = addRow({ id, action, result: 'sent…', status: 'PENDING' });
  app.pending.set(id, entry);
  Promise.resolve()
    .then(() => client.publish(`robot/${robot}/${topicSuffix}`, bytes, { retain: false, ack: true }))
    .catch((err) => {
      if (!app.pending.has(id)) return;
      app.pending.delete(id);
      const text = brokerRefusalText(err);
      if (entry.row) updateRow(entry.row, { result: text, status: 'BROKER_REFUSED' });
      else addRow({ id, action, result: text, status: 'BROKER_REFUSED' });
      if (app.hold && app.hold.id === id) stopKeepalives(app.hold);
      notice(text, 'error');
    });
  return id;
}

function stopKeepalives(hold) {
  hold.refused = true;
  clearInterval(hold.timer);
  hold.timer = 0;
}

function startHold(action, source) {
  if (app.hold && app.hold.action === action) {
    app.hold.source = source;
    return;
  }
  if (app.hold) releaseHold(false);
  const hold = { action, source, id: '', timer: 0, refused: false };
  app.hold = hold;
  markPad(action, true);
  hold.id = sendCommand(action, motionBody(action));
  if (!hold.id) {
    app.hold = null;
    markPad(action, false);
    return;
  }
  hold.timer = setInterval(() => {
    if (app.hold !== hold || hold.refused) return;
    sendCommand('keepalive', {}, { log: false });
  }, KEEPALIVE_MS);
}

// Ends the hold started by `source` (any hold when source is null) and sends
// STOP when `stop` is set.
function endHold(source, stop = true) {
  const hold = app.hold;
  if (!hold || (source !== null && hold.source !== source)) return;
  app.hold = null;
  clearInterval(hold.timer);
  markPad(hold.action, false);
  if (stop) sendCommand('stop', {});
}

function releaseHold(stop) {
  endHold(null, stop && app.state === 'registered');
}

function stopNow() {
  endHold(null, false);
  sendCommand('stop', {});
}

function pressEstop() {
  endHold(null, false);
  const id = sendCommand('estop', { reason: 'E-STOP on the web page' });  // the agent adds who
  if (id) {
    app.localLatch = true;
    updateLatch();
  }
}

function clearEstop() {
  sendCommand('clearEstop', {}, { topicSuffix: 'cmd/clear-estop' });
}

function markPad(action, on) {
  const b = ui.pad.querySelector(`[data-action="${action}"]`);
  if (b) b.classList.toggle('held', on);
}

// --------------------------------------------------------------------- acks

function addRow({ id, action, result, status, latency = '', controller = '' }) {
  const tr = el('tr', { 'data-id': id, 'data-action': action, 'data-status': status });
  tr.append(
    el('td', { class: 'time', text: clockTime() }),
    el('td', { class: 'id', text: id }),
    el('td', { class: 'action', text: controller ? `${action} (${controller})` : action }),
    el('td', { class: 'result', text: result }),
    el('td', { class: 'latency', text: latency }),
  );
  ui.acks.prepend(tr);
  while (ui.acks.childElementCount > MAX_ACK_ROWS) ui.acks.lastElementChild.remove();
  return tr;
}

function updateRow(tr, { result, status, latency, latencyMs }) {
  tr.dataset.status = status;
  tr.classList.toggle('ok', status === 'RESULT_OK');
  tr.classList.toggle('refused', status !== 'RESULT_OK' && status !== 'PENDING');
  if (result !== undefined) tr.querySelector('.result').textContent = result;
  if (latency !== undefined) tr.querySelector('.latency').textContent = latency;
  if (latencyMs !== undefined) tr.dataset.latencyMs = latencyMs.toFixed(2);
}

function onAck(msg) {
  if (msg.topic !== `robot/${app.selected}/ack`) return;
  const r = decode(msg.topic, msg.payload);
  if (!r) return;
  // One row per ack, should a publication ever arrive twice.
  const key = `${msg.publisher}/${msg.seq}/${r.controller}/${r.id}`;
  if (app.acksSeen.has(key)) return;
  app.acksSeen.add(key);
  if (app.acksSeen.size > 1000) app.acksSeen.delete(app.acksSeen.values().next().value);
  const mine = app.pending.get(r.id);
  const plain = RESULT_TEXT[r.status] || r.status;
  // The detail adds who holds the lease, how stale, what the Arduino said; an
  // e-stop's reason is in the banner already, a superseded motion needs none.
  const quiet = r.status === 'RESULT_OK' || r.status === 'RESULT_REJECTED_ESTOP_LATCHED' ||
    r.status === 'RESULT_SUPERSEDED';
  const result = r.detail && !quiet ? `${plain} — ${r.detail}` : plain;
  const agentMs = (r.latencyUs || 0) / 1000;
  if (r.status === 'RESULT_REJECTED_ESTOP_LATCHED') {
    app.localLatch = true;
    updateLatch();
  }
  if (!mine) {
    // Someone else's command (or the agent's own dead-man stop): shown, except
    // the keepalives that keep every driver's lease alive.
    if (r.action === 'keepalive' && r.status === 'RESULT_OK') return;
    const tr = addRow({
      id: r.id || '–', action: r.action || '?', result, status: r.status,
      latency: agentMs ? `agent ${agentMs.toFixed(0)} ms` : '', controller: r.controller || 'agent',
    });
    updateRow(tr, { status: r.status });
    return;
  }
  app.pending.delete(r.id);
  const rtt = performance.now() - mine.sentAt;
  const hold = app.hold;
  if (mine.keepalive) {
    if (r.status === 'RESULT_OK') {
      ui.keepalives.textContent = `${++app.keepalivesOk} keepalives acknowledged (not listed).`;
      return;
    }
    if (!hold || hold.refused) return;  // the motion's own refusal said it already
    stopKeepalives(hold);
    const tr = addRow({ id: r.id, action: 'keepalive', result, status: r.status });
    updateRow(tr, { status: r.status, latency: `${rtt.toFixed(0)} ms`, latencyMs: rtt });
    notice(result, 'error');
    return;
  }
  if (mine.row) {
    updateRow(mine.row, {
      result, status: r.status, latencyMs: rtt,
      latency: `${rtt.toFixed(0)} ms` + (agentMs ? ` (agent ${agentMs.toFixed(0)})` : ''),
    });
  }
  if (r.status !== 'RESULT_OK') {
    if (hold && hold.id === r.id) stopKeepalives(hold);
    notice(result, 'error');
  } else if (mine.action === 'clear_estop') {
    app.localLatch = false;
    updateLatch();
  }
}

function expirePending() {
  const now = performance.now();
  for (const [id, p] of app.pending) {
    if (now - p.sentAt < ACK_WAIT_MS) continue;
    app.pending.delete(id);
    if (p.row) updateRow(p.row, { result: 'No ack from the robot (is its agent running?)', status: 'NO_ACK' });
  }
}

// ---------------------------------------------------------------- telemetry

function tickSum(t) {
  return (t.leftForwardTicks || 0) + (t.rightForwardTicks || 0) + (t.leftReverseTicks || 0) +
    (t.rightReverseTicks || 0) + (t.leftForwardTicksTurns || 0) + (t.rightForwardTicksTurns || 0) +
    (t.leftReverseTicksTurns || 0) + (t.rightReverseTicksTurns || 0);
}

function onTelemetry(msg) {
  if (msg.topic !== `robot/${app.selected}/telemetry`) return;
  const t = decode(msg.topic, msg.payload);
  if (!t) return;
  showTelemetry(t);
  const now = Date.now();
  app.series.push({ t: now, dist: (t.forwardDistCm || 0) + (t.reverseDistCm || 0), ticks: tickSum(t) });
  while (app.series.length && now - app.series[0].t > PLOT_WINDOW_MS) app.series.shift();
  schedulePlot();
}

function showTelemetry(t) {
  const v = (x) => (t ? String(x || 0) : '–');
  ui.tFwd.textContent = v(t && t.forwardDistCm);
  ui.tRev.textContent = v(t && t.reverseDistCm);
  ui.tTicksLr.textContent = t
    ? `${(t.leftForwardTicks || 0) + (t.leftReverseTicks || 0)} / ${(t.rightForwardTicks || 0) + (t.rightReverseTicks || 0)}`
    : '–';
  ui.tTicks.textContent = t ? String(tickSum(t)) : '–';
  ui.tSample.textContent = v(t && t.sample);
}

let plotQueued = false;
function schedulePlot() {
  if (plotQueued) return;
  plotQueued = true;
  requestAnimationFrame(() => {
    plotQueued = false;
    drawPlot();
  });
}

function drawPlot() {
  const c = ui.plot;
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(200, Math.round(c.clientWidth * ratio));
  const h = Math.max(100, Math.round(c.clientHeight * ratio));
  if (c.width !== w || c.height !== h) {
    c.width = w;
    c.height = h;
  }
  const g = c.getContext('2d');
  const css = getComputedStyle(c);
  const color = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  g.clearRect(0, 0, w, h);
  const pad = { l: 44 * ratio, r: 54 * ratio, t: 8 * ratio, b: 18 * ratio };
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;
  g.strokeStyle = color('--grid', '#ccc');
  g.lineWidth = ratio;
  g.strokeRect(pad.l, pad.t, pw, ph);
  g.font = `${11 * ratio}px sans-serif`;
  g.fillStyle = color('--muted', '#666');
  g.textBaseline = 'alphabetic';
  const pts = app.series;
  const now = Date.now();
  const span = pts.length
    ? Math.min(PLOT_WINDOW_MS, Math.max(PLOT_MIN_SPAN_MS, Math.ceil((now - pts[0].t) / 10_000) * 10_000))
    : PLOT_WINDOW_MS;
  g.fillText(`-${span / 1000} s`, pad.l, h - 4 * ratio);
  g.textAlign = 'right';
  g.fillText('now', pad.l + pw, h - 4 * ratio);
  if (pts.length === 0) {
    g.textAlign = 'center';
    g.fillText('no telemetry yet', pad.l + pw / 2, pad.t + ph / 2);
    g.textAlign = 'start';
    return;
  }
  const x = (t) => pad.l + pw * (1 - (now - t) / span);
  const line = (key, stroke, axisX, align, width) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of pts) {
      lo = Math.min(lo, p[key]);
      hi = Math.max(hi, p[key]);
    }
    if (hi - lo < 1) hi = lo + 1;
    const y = (v) => pad.t + ph * (1 - (v - lo) / (hi - lo));
    g.strokeStyle = stroke;
    g.lineWidth = width * ratio;
    g.beginPath();
    pts.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p[key])) : g.moveTo(x(p.t), y(p[key]))));
    g.stroke();
    g.fillStyle = stroke;
    g.textAlign = align;
    g.fillText(String(hi), axisX, pad.t + 10 * ratio);
    g.fillText(String(lo), axisX, pad.t + ph);
  };
  line('dist', color('--dist', '#1f77b4'), pad.l - 4 * ratio, 'right', 4);
  line('ticks', color('--ticks', '#d62728'), pad.l + pw + 4 * ratio, 'left', 1.5);
  g.textAlign = 'start';
}

// ------------------------------------------------------------ page controls

function updateLatch() {
  const r = app.robots.get(app.selected);
  const latched = (r && r.status && r.status.estopLatched) || app.localLatch;
  ui.latched.classList.toggle('hidden', !latched);
  document.body.classList.toggle('estop-latched', Boolean(latched));
  const reason = r && r.status && r.status.estopReason;
  ui.latchedText.textContent = latched
    ? `Emergency stop latched on ${app.selected}${reason ? `: ${reason}` : ''}. Motion is refused until Clear.`
    : '';
}

function updateControls() {
  const live = app.state === 'registered' && Boolean(app.selected);
  ui.estop.disabled = !live;
  ui.clear.disabled = !live;
  for (const b of ui.pad.querySelectorAll('button')) b.disabled = !live;
  ui.pad.classList.toggle('disabled', !live);
  ui.disconnect.disabled = !app.client;
  ui.connect.disabled = !app.key;
}

function showRange(input, out, unit, zeroText) {
  const f = () => {
    out.textContent = Number(input.value) === 0 && zeroText ? zeroText : `${input.value}${unit}`;
  };
  input.addEventListener('input', f);
  f();
}

const KEY_ACTIONS = {
  ArrowUp: 'forward', KeyW: 'forward', ArrowDown: 'backward', KeyS: 'backward',
  ArrowLeft: 'left', KeyA: 'left', ArrowRight: 'right', KeyD: 'right',
};

// Keys that go to a field (text, a slider's arrows) are not driving keys; a
// focused file picker, checkbox or button does not take arrows.
const TYPING_INPUTS = new Set(['text', 'search', 'number', 'password', 'email', 'url', 'tel', 'range']);
function typingInto(target) {
  if (!target || !target.tagName) return false;
  const tag = target.tagName;
  if (tag === 'INPUT') return TYPING_INPUTS.has(target.type);
  return tag === 'TEXTAREA' || tag === 'SELECT' || target.isContentEditable;
}

function wire() {
  showRange(ui.distance, ui.distanceOut, ' cm', 'until released');
  showRange(ui.angle, ui.angleOut, '°', 'until released');
  showRange(ui.speed, ui.speedOut, ' %');

  for (const b of ui.pad.querySelectorAll('button')) {
    const action = b.dataset.action;
    b.addEventListener('pointerdown', (e) => {
      if (e.pointerType === 'mouse' && e.button !== 0) return;
      e.preventDefault();
      try {
        b.setPointerCapture(e.pointerId);
      } catch (err) {
        /* not capturable: release still arrives on this button */
      }
      if (action === 'stop') stopNow();
      else startHold(action, `pointer:${e.pointerId}`);
    });
    const up = (e) => endHold(`pointer:${e.pointerId}`);
    b.addEventListener('pointerup', up);
    b.addEventListener('pointercancel', up);
    b.addEventListener('lostpointercapture', up);
    b.addEventListener('contextmenu', (e) => e.preventDefault());
    // Touch: no scrolling, zooming or long-press menu while a finger drives.
    b.addEventListener('touchstart', (e) => e.preventDefault(), { passive: false });
    b.addEventListener('touchend', (e) => e.preventDefault(), { passive: false });
    // Keyboard activation of a focused button (Enter) is a tap: one step, then stop
    // would surprise; Enter on STOP stops, the others do nothing.
    b.addEventListener('click', (e) => {
      if (e.detail === 0 && action === 'stop') stopNow();
    });
  }

  window.addEventListener('keydown', (e) => {
    if (typingInto(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.code === 'Space') {
      e.preventDefault();
      if (!e.repeat) stopNow();
      return;
    }
    const action = KEY_ACTIONS[e.code];
    if (!action) return;
    e.preventDefault();
    if (e.repeat) return;
    if (app.state === 'registered' && app.selected) startHold(action, `key:${e.code}`);
  });
  window.addEventListener('keyup', (e) => {
    if (e.code === 'Space' && !typingInto(e.target)) e.preventDefault();
    if (KEY_ACTIONS[e.code]) endHold(`key:${e.code}`);
  });
  // A page that loses focus never hears the key go up: stop now, not after the dead-man time.
  window.addEventListener('blur', () => releaseHold(true));
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) releaseHold(true);
  });

  ui.estop.addEventListener('pointerdown', (e) => {
    if (e.pointerType === 'mouse' && e.button !== 0) return;
    app.lastEstopPress = performance.now();
    pressEstop();
  });
  ui.estop.addEventListener('click', () => {
    if (performance.now() - app.lastEstopPress > 1000) pressEstop();
  });
  ui.clear.addEventListener('click', clearEstop);

  ui.keyFile.addEventListener('change', () => readKeyFile(ui.keyFile.files && ui.keyFile.files[0]));
  for (const target of [ui.drop, document.body]) {
    target.addEventListener('dragover', (e) => {
      e.preventDefault();
      ui.drop.classList.add('over');
    });
    target.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
    target.addEventListener('drop', (e) => {
      e.preventDefault();
      e.stopPropagation();
      ui.drop.classList.remove('over');
      readKeyFile(e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0]);
    });
  }
  ui.remember.addEventListener('change', () => {
    if (ui.remember.checked) rememberKey();
    else {
      storageSet(STORE_KEY, null);
      storageSet(STORE_BROKER, null);
    }
    showKey();
  });
  ui.forget.addEventListener('click', forgetKey);
  ui.connect.addEventListener('click', connect);
  ui.disconnect.addEventListener('click', disconnect);
  ui.generate.addEventListener('click', generateKey);
  ui.setApply.addEventListener('click', () => {
    const key = ui.setKey.value.trim();
    const relay = ui.setRelay.value.trim();
    if (key.length !== 40) {
      notice('A broker key is 40 Z85 characters.', 'error');
      return;
    }
    if (!/^wss?:\/\//.test(relay)) {
      notice('The relay URL starts with ws:// or wss://.', 'error');
      return;
    }
    app.config.brokerKey = key;
    app.config.relayUrl = relay;
    if (ui.remember.checked) storageSet(STORE_BROKER, key);
    showConfig();
    if (app.key) connect();
    else setState('idle');
  });
  window.addEventListener('resize', schedulePlot);
  setInterval(expirePending, 1000);
  setInterval(schedulePlot, 1000);  // the time axis moves on without telemetry too
}

async function main() {
  wire();
  updateControls();
  drawPlot();
  await loadConfig();
  const saved = storageGet(STORE_KEY);
  if (saved) {
    try {
      const s = JSON.parse(saved);
      ui.remember.checked = true;
      if (useKeyText(String(s.cert), `${s.name}_secret`)) await connect();
    } catch (e) {
      notice('The key remembered on this device could not be read; it was forgotten.', 'error');
      storageSet(STORE_KEY, null);
    }
  }
  showKey();
}

main();
