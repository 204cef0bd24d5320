"""The curvebus Python client: one CURVE-encrypted connection to a broker.

A background thread owns the ZeroMQ socket (sockets are not thread-safe); the
calls of this class hand it work through a queue and wait for the answers.
It keeps the alive signal (HEARTBEAT after one agreed interval of silence,
PONG to PING), declares the broker lost after three silent intervals, and
then reconnects with backoff on a fresh socket, registers again and
re-subscribes by itself.
"""
import itertools
import os
import queue
import threading
import time

import zmq
import zmq.utils.monitor

from . import curvebus_pb2 as pb
from .keys import resolve_settings

__all__ = ["Client", "Message", "CurvebusError", "connect"]


class CurvebusError(Exception):
    """A refusal or failure: ``code`` is e.g. DENIED, TOO_LARGE, NOT_FOUND,
    NOT_ADMIN, TIMEOUT, NO_BROKER, REFUSED."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


class Message:
    __slots__ = ("topic", "payload", "publisher", "seq", "retained", "published_us", "content_type")

    def __init__(self, d):
        self.topic = d.topic
        self.payload = d.payload
        self.publisher = d.publisher
        self.seq = d.seq
        self.retained = d.retained
        self.published_us = d.timestamp_us
        self.content_type = d.content_type

    def text(self):
        return self.payload.decode("utf-8", "replace")

    def __repr__(self):
        return "Message(%r, %r, seq=%d, publisher=%r)" % (self.topic, self.payload, self.seq, self.publisher)


def _error_name(code):
    name = pb.ErrorCode.Name(code) if code in pb.ErrorCode.values() else "ERROR_UNSPECIFIED"
    return name[len("ERROR_"):]


def _matches(pattern, topic):
    p = pattern.split("/")
    t = topic.split("/")
    if topic.startswith("$") and p[0] in ("#", "+"):
        return False
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t):
            return False
        if level != "+" and level != t[i]:
            return False
    return len(p) == len(t)


def _one(op):
    """A Frame holding one op.  Concatenated frames parse as one Frame with
    all their ops (repeated fields merge), so a batch is a plain join."""
    f = pb.Frame()
    f.ops.append(op)
    return f.SerializeToString()


_REPLY_FIELDS = ("registered", "suback", "unsuback", "puback", "pull_reply", "topics_reply", "admin_reply", "error")


class _Waiter:
    __slots__ = ("event", "reply", "failure", "sent")

    def __init__(self):
        self.event = threading.Event()
        self.reply = None
        self.failure = None
        self.sent = False


class Client:
    def __init__(self, endpoint, server_key, public_key, secret_key, role=pb.ROLE_CLIENT, provides=(),
                 heartbeat_ms=1000, name="curvebus-python", reconnect_min=0.1, reconnect_max=5.0):
        self.endpoint = endpoint
        self._keys = (server_key, public_key, secret_key)
        self._role = role
        self._provides = list(provides)
        self._hb_ms = heartbeat_ms
        self._requested_hb = heartbeat_ms
        self._name = name
        self._backoff_range = (reconnect_min, reconnect_max)
        self._ctx = zmq.Context.instance()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._out = []             # encoded frames waiting for the socket: (bytes, request_id)
        self._waiters = {}
        self._subs = []            # [patterns, callback or None]
        self._inbox = queue.Queue()  # messages of subscriptions without a callback
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stop = False
        self._connected = threading.Event()
        self._refused = None
        self.registration = None
        self.reconnects = 0
        self.errors = 0
        self.last_heard = 0.0
        self._thread = None

    # ------------------------------------------------------------------ public
    def connect(self, timeout=5.0):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="curvebus-io", daemon=True)
            self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._connected.is_set() and self._refused is None and time.monotonic() < deadline:
            self._connected.wait(0.05)
        if self._connected.is_set():
            return self
        self.close()
        if self._refused:
            raise CurvebusError("REFUSED", "the broker at %s refused this key (%s)" % (self.endpoint, self._refused))
        raise CurvebusError("NO_BROKER", "no answer from the broker at %s (not running, or this key is not allowed)"
                            % self.endpoint)

    def publish(self, topic, payload, retain=False, ack=True, timeout=5.0, content_type=""):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        op = pb.Op()
        op.publish.topic = topic
        op.publish.payload = payload
        op.publish.retain = retain
        if content_type:
            op.publish.content_type = content_type
        if not ack:
            self._send(op, 0)
            return None
        rid = next(self._ids)
        op.publish.request_id = rid
        op.publish.ack = True
        return self._request(op, rid, timeout).puback

    def subscribe(self, patterns, callback=None, want_retained=False, timeout=5.0):
        """Subscribes; messages go to ``callback(message)`` (on the I/O thread)
        or, without one, to :meth:`messages`."""
        if isinstance(patterns, str):
            patterns = [patterns]
        entry = [list(patterns), callback]
        with self._lock:
            self._subs.append(entry)
        op = pb.Op()
        rid = next(self._ids)
        op.subscribe.request_id = rid
        op.subscribe.patterns.extend(patterns)
        op.subscribe.want_retained = want_retained
        try:
            ack = self._request(op, rid, timeout).suback
        except Exception:
            with self._lock:
                self._subs.remove(entry)
            raise
        refused = [a for a in ack.answers if a.result != pb.PATTERN_GRANTED]
        if refused:
            with self._lock:
                self._subs.remove(entry)
            a = refused[0]
            code = "DENIED" if a.result == pb.PATTERN_DENIED else "INVALID_TOPIC"
            raise CurvebusError(code, "subscribe %s: %s" % (a.pattern, a.reason or code))
        return self

    def messages(self, timeout=None):
        """Iterates over messages of callback-less subscriptions; ends after
        ``timeout`` seconds without one (None: never)."""
        while True:
            try:
                yield self._inbox.get(timeout=timeout)
            except queue.Empty:
                return

    def pull(self, topic, since_seq=0, max_count=0, timeout=5.0):
        op = pb.Op()
        rid = next(self._ids)
        op.pull.request_id = rid
        op.pull.topic = topic
        op.pull.since_seq = since_seq
        op.pull.max_count = max_count
        reply = self._request(op, rid, timeout).pull_reply
        out = [Message(d) for d in reply.messages]
        if not out and since_seq == 0:
            raise CurvebusError("NOT_FOUND", "nothing published on " + topic)
        return out

    def topics(self, pattern="#", timeout=5.0):
        op = pb.Op()
        rid = next(self._ids)
        op.topics.request_id = rid
        op.topics.pattern = pattern
        return list(self._request(op, rid, timeout).topics_reply.topics)

    def admin(self, command, argument="", timeout=5.0):
        op = pb.Op()
        rid = next(self._ids)
        op.admin.request_id = rid
        op.admin.command = command
        op.admin.argument = argument
        return self._request(op, rid, timeout).admin_reply

    @property
    def connected(self):
        return self._connected.is_set()

    def close(self):
        with self._lock:
            if self._stop:
                return
            self._stop = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ internals
    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _send(self, op, rid):
        with self._lock:
            if self._stop:
                raise CurvebusError("CLOSED", "client closed")
            self._out.append((_one(op), rid))
        self._wake()

    def _request(self, op, rid, timeout):
        w = _Waiter()
        with self._lock:
            if self._stop:
                raise CurvebusError("CLOSED", "client closed")
            self._waiters[rid] = w
        self._send(op, rid)
        ok = w.event.wait(timeout)
        with self._lock:
            self._waiters.pop(rid, None)
            if not ok:
                self._out = [o for o in self._out if o[1] != rid]
        if not ok:
            if self._connected.is_set():
                raise CurvebusError("TIMEOUT", "no answer from the broker in time")
            raise CurvebusError("NO_BROKER", "broker not reachable")
        if w.failure is not None:
            raise w.failure
        if w.reply.HasField("error"):
            e = w.reply.error
            raise CurvebusError(_error_name(e.code), e.message)
        return w.reply

    def _open(self):
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        server, public, secret = self._keys
        s.curve_serverkey = server.encode()
        s.curve_publickey = public.encode()
        s.curve_secretkey = secret.encode()
        s.connect(self.endpoint)
        mon = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
        return s, mon

    def _register(self, sock):
        op = pb.Op()
        self._register_id = next(self._ids)
        op.register.request_id = self._register_id
        op.register.role = self._role
        op.register.provides.extend(self._provides)
        op.register.heartbeat_ms = self._requested_hb
        op.register.client_name = self._name
        op.register.client_version = "python"
        sock.send(_one(op))
        return time.monotonic()

    def _resubscribe(self, sock):
        with self._lock:
            patterns = sorted({p for entry in self._subs for p in entry[0]})
        if patterns:
            op = pb.Op()
            op.subscribe.patterns.extend(patterns)
            sock.send(_one(op))

    def _fail_sent(self, why):
        with self._lock:
            for w in self._waiters.values():
                if w.sent and not w.event.is_set():
                    w.failure = CurvebusError("NO_BROKER", "connection to the broker lost: " + why)
                    w.event.set()

    def _deliver(self, d):
        m = Message(d)
        with self._lock:
            targets = [cb for pats, cb in self._subs if any(_matches(p, m.topic) for p in pats)]
        queued = False
        for cb in targets:
            if cb is None:
                if not queued:
                    self._inbox.put(m)
                    queued = True
            else:
                try:
                    cb(m)
                except Exception as e:  # a handler's bug must not kill the connection
                    print("curvebus: handler failed: %r" % (e,))

    def _run(self):
        sock = mon = None
        registered = False
        backoff = 0.0
        next_connect = 0.0
        register_sent = last_sent = 0.0
        poller = zmq.Poller()
        while True:
            with self._lock:
                if self._stop:
                    break
            now = time.monotonic()
            if sock is None and now >= next_connect:
                sock, mon = self._open()
                poller = zmq.Poller()
                poller.register(self._wake_r, zmq.POLLIN)
                poller.register(sock, zmq.POLLIN)
                poller.register(mon, zmq.POLLIN)
                register_sent = last_sent = self._register(sock)
                self.last_heard = now
                registered = False
            lost = None
            if sock is not None:
                interval = self._hb_ms / 1000.0
                if not registered and now - register_sent > max(3.0, 3 * interval):
                    lost = "no answer to REGISTER"
                elif registered and now - self.last_heard > 3 * interval:
                    lost = "broker silent"
                elif registered and now - last_sent >= interval:
                    op = pb.Op()
                    op.heartbeat.SetInParent()
                    sock.send(_one(op))
                    last_sent = now
            if lost is None and sock is not None:
                events = dict(poller.poll(min(50, max(1, self._hb_ms // 2))))
                if self._wake_r in events:
                    try:
                        os.read(self._wake_r, 4096)
                    except OSError:
                        pass
                if mon in events:
                    try:
                        evt = zmq.utils.monitor.recv_monitor_message(mon)
                        if evt["event"] in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
                            self._refused = "handshake refused"
                            lost = "the broker refused this key"
                    except zmq.ZMQError:
                        pass
                while lost is None:
                    try:
                        raw = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.last_heard = time.monotonic()
                    frame = pb.Frame()
                    try:
                        frame.ParseFromString(raw)
                    except Exception:
                        continue
                    for op in frame.ops:
                        kind = op.WhichOneof("body")
                        if kind == "ping":
                            pong = pb.Op()
                            pong.pong.nonce = op.ping.nonce
                            sock.send(_one(pong))
                        elif kind == "deliver":
                            self._deliver(op.deliver)
                        elif kind == "registered" and op.registered.request_id == self._register_id:
                            registered = True
                            self.registration = op.registered
                            self._hb_ms = max(10, op.registered.heartbeat_ms)
                            backoff = 0.0
                            self._resubscribe(sock)
                            self._connected.set()
                        elif kind in _REPLY_FIELDS:
                            rid = getattr(op, kind).request_id
                            if kind == "error":
                                self.errors += 1
                                code = op.error.code
                                if code in (pb.ERROR_NOT_REGISTERED, pb.ERROR_SESSION_EXPIRED) and registered:
                                    registered = False
                                    self._connected.clear()
                                    register_sent = self._register(sock)
                                elif code in (pb.ERROR_KICKED, pb.ERROR_REVOKED, pb.ERROR_KEY_EXPIRED, pb.ERROR_IDENTITY):
                                    lost = op.error.message
                            with self._lock:
                                w = self._waiters.get(rid) if rid else None
                            if w is not None:
                                w.reply = op
                                w.event.set()
                # Outgoing, batched into one frame per pass.
                if lost is None and registered:
                    with self._lock:
                        batch, self._out = self._out, []
                        for _, rid in batch:
                            w = self._waiters.get(rid)
                            if w is not None:
                                w.sent = True
                    if batch:
                        sock.send(b"".join(b for b, _ in batch))
                        last_sent = time.monotonic()
            elif sock is None:
                time.sleep(min(0.05, max(0.0, next_connect - now)))
            if lost is not None:
                self._connected.clear()
                poller = zmq.Poller()
                sock.close(0)
                mon.close(0)
                sock = mon = None
                self._fail_sent(lost)
                self.reconnects += 1
                backoff = self._backoff_range[0] if backoff == 0 else min(backoff * 2, self._backoff_range[1])
                next_connect = time.monotonic() + backoff
        if sock is not None:
            if registered:
                with self._lock:
                    pending, self._out = self._out, []
                if pending:
                    sock.send(b"".join(b for b, _ in pending))
                bye = pb.Op()
                bye.bye.reason = "closed"
                sock.send(_one(bye))
                sock.setsockopt(zmq.LINGER, 1000)
            sock.close()
            mon.close(0)
        with self._lock:
            for w in self._waiters.values():
                if not w.event.is_set():
                    w.failure = CurvebusError("CLOSED", "client closed")
                    w.event.set()
        self._connected.clear()


def connect(endpoint=None, server_key=None, key=None, home=None, timeout=5.0, **options):
    """Resolves endpoint and keys like the `curvebus` tool (flags, then
    CURVEBUS_* variables, then ./.curvebus) and returns a connected Client."""
    endpoint, server, public, secret = resolve_settings(endpoint, server_key, key, home)
    return Client(endpoint, server, public, secret, **options).connect(timeout)
