// The curvebus wire protocol and the robot messages, read at run time from
// the .proto files themselves (proto/curvebus.proto, proto/robot.proto: the
// single source of truth; curvebus-web serves them under /proto/).  No field
// number is written anywhere in the JavaScript.
//
// Contract:
//   await loadProtocol({ fetchText, base }) -> protocol
//     fetchText(path) -> Promise<string>; default: fetch(path) in the browser.
//     Paths are base + 'curvebus.proto' and base + 'robot.proto' (base
//     default '/proto/').  Rejects when a file cannot be fetched or parsed.
//   protocolFromText(curvebusProtoText, robotProtoText) -> protocol (synchronous)
//   protocol = {
//     root,                              the protobuf.js Root of both files
//     Frame, Op, Register, ..., Presence every message of curvebus.proto,
//     Command, CommandResult, Telemetry, RobotStatus, ...  and of robot.proto,
//                                        by short name (protobuf.js Types)
//     RobotCommand, RobotAck, RobotTelemetry, RobotStatus   aliases for the robot topics
//     ErrorCode, Role, PatternResult, AdminCommand, ResultStatus   enums (name <-> number)
//   }
//   Field names are protobuf.js's camelCase (request_id -> requestId), which
//   is also Protobuf's JSON mapping.
//
//   robotKind(topic) -> 'cmd' | 'ack' | 'telemetry' | 'status' | ''
//     as the CLI's robot_kind (robot/<id>/cmd/clear-estop is 'cmd' too).
//   encodeRobotCommand(protocol, command) -> Uint8Array
//     command: a Command as a plain object, e.g. { forward: { distanceCm: 50,
//     speedPct: 60 } }; fills `id` and `issuedUs` when they are missing, as
//     `curvebus pub --json robot/<id>/cmd` does.  Throws on an invalid command.
//   decodeRobotPayload(protocol, topic, bytes) -> plain object, or null when
//     the topic is not a robot topic or the bytes do not decode.
//
// int64/uint64 fields decode as numbers in the browser's protobuf.js build
// and as Long objects in Node; toNumber() turns either into a Number (every
// value curvebus sends -- seqs, microsecond times, ids -- is below 2^53).

import { protobuf } from './deps.js';

const ROBOT_ALIASES = {
  RobotCommand: 'curvebus.robot.v1.Command',
  RobotAck: 'curvebus.robot.v1.CommandResult',
  RobotTelemetry: 'curvebus.robot.v1.Telemetry',
  RobotStatus: 'curvebus.robot.v1.RobotStatus',
};

export function protocolFromText(curvebusProto, robotProto) {
  const pb = protobuf();
  const root = new pb.Root();
  pb.parse(curvebusProto, root);
  pb.parse(robotProto, root);
  root.resolveAll();
  const protocol = { root };
  for (const pkg of ['curvebus.v1', 'curvebus.robot.v1']) {
    const ns = root.lookup(pkg);
    for (const item of ns.nestedArray) {
      if (item instanceof pb.Type || item instanceof pb.Enum) {
        if (protocol[item.name]) throw new Error(`two protocol types named ${item.name}`);
        protocol[item.name] = item;
      }
    }
  }
  for (const [alias, full] of Object.entries(ROBOT_ALIASES)) protocol[alias] = root.lookupType(full);
  return protocol;
}

export async function loadProtocol({ fetchText, base = '/proto/' } = {}) {
  const get =
    fetchText ||
    ((path) =>
      fetch(path).then((r) => {
        if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
        return r.text();
      }));
  const [bus, robot] = await Promise.all([get(base + 'curvebus.proto'), get(base + 'robot.proto')]);
  return protocolFromText(bus, robot);
}

export function toNumber(v) {
  if (typeof v === 'number') return v;
  if (v === null || v === undefined) return 0;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v.toNumber === 'function') return v.toNumber();
  if (typeof v.low === 'number') return (v.high >>> 0) * 0x100000000 + (v.low >>> 0);
  return Number(v);
}

export function robotKind(topic) {
  const levels = String(topic).split('/');
  if (levels.length === 4 && levels[0] === 'robot' && levels[2] === 'cmd' && levels[3] === 'clear-estop') return 'cmd';
  if (levels.length !== 3 || levels[0] !== 'robot') return '';
  return ['cmd', 'ack', 'telemetry', 'status'].includes(levels[2]) ? levels[2] : '';
}

let commandCounter = 0;
const commandPrefix = `web-${Math.floor(Math.random() * 0x100000000).toString(16)}`;

export function encodeRobotCommand(protocol, command) {
  const c = { ...command };
  if (!c.id) c.id = `${commandPrefix}-${++commandCounter}`;
  if (!c.issuedUs || toNumber(c.issuedUs) === 0) c.issuedUs = Date.now() * 1000;
  const T = protocol.RobotCommand;
  const problem = T.verify(c);
  if (problem) throw new TypeError(`invalid robot command: ${problem}`);
  return T.encode(T.fromObject(c)).finish();
}

export function decodeRobotPayload(protocol, topic, bytes) {
  const T = {
    cmd: protocol.RobotCommand,
    ack: protocol.RobotAck,
    telemetry: protocol.RobotTelemetry,
    status: protocol.RobotStatus,
  }[robotKind(topic)];
  if (!T) return null;
  try {
    return T.toObject(T.decode(bytes), { longs: Number, enums: String, defaults: true, oneofs: true });
  } catch (e) {
    return null;
  }
}
