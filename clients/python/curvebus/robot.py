"""Robot commands for scripts: send a Command, wait for its CommandResult.

    with curvebus.connect() as c:
        alex = Robot(c, "alex")
        alex.forward(30, 60)      # holds the lease with keepalives while it drives
        alex.stop()

The agent lets one controller drive at a time (the lease) and stops the robot
by itself when that controller is silent for its dead-man time (500 ms by
default).  While a motion is under way this helper sends a keepalive Command
every ``keepalive`` seconds from a background thread, until stop() or
release() (or close()).
"""
import itertools
import os
import socket
import threading
import time

from . import robot_pb2 as rpb
from .client import CurvebusError

__all__ = ["Robot", "CommandFailed", "rpb"]


class CommandFailed(CurvebusError):
    def __init__(self, result):
        super().__init__(rpb.ResultStatus.Name(result.status), result.detail or result.action)
        self.result = result


class Robot:
    def __init__(self, client, robot_id="alex", keepalive=0.15, timeout=5.0):
        self.client = client
        self.id = robot_id
        self.base = "robot/%s/" % robot_id
        self.timeout = timeout
        self._keepalive_period = keepalive
        self._ids = itertools.count(1)
        self._prefix = "%s-%d-%x-" % (socket.gethostname(), os.getpid(), id(self) & 0xFFFF)
        self._lock = threading.Condition()
        self._results = {}
        self._telemetry = []
        self._moving = False
        self._ka_thread = None
        client.subscribe([self.base + "ack", self.base + "telemetry"], self._on_message)

    # ---------------------------------------------------------------- commands
    def forward(self, distance_cm, speed_pct=60):
        return self._move("forward", "distance_cm", distance_cm, speed_pct)

    def backward(self, distance_cm, speed_pct=60):
        return self._move("backward", "distance_cm", distance_cm, speed_pct)

    def left(self, angle_deg, speed_pct=60):
        return self._move("left", "angle_deg", angle_deg, speed_pct)

    def right(self, angle_deg, speed_pct=60):
        return self._move("right", "angle_deg", angle_deg, speed_pct)

    def stop(self):
        self._stop_keepalive()
        return self.send(lambda c: c.stop.SetInParent())

    def release(self):
        self._stop_keepalive()
        return self.send(lambda c: c.release.SetInParent())

    def estop(self, reason="script"):
        self._stop_keepalive()
        def fill(c):
            c.estop.reason = reason

        return self.send(fill)

    def clear_estop(self):
        """Clears a latched e-stop.  It goes to robot/<id>/cmd/clear-estop:
        only names the broker lets publish there may clear."""
        return self.send(lambda c: c.clear_estop.SetInParent(), topic="cmd/clear-estop")

    def get_stats(self):
        return self.send(lambda c: c.get_stats.SetInParent()).stats

    def clear_stats(self):
        return self.send(lambda c: c.clear_stats.SetInParent())

    def send(self, fill, check=True, topic="cmd"):
        """Sends a Command built by ``fill(command)`` and returns its
        CommandResult; raises CommandFailed unless RESULT_OK (with check)."""
        cmd = rpb.Command()
        cmd.id = self._prefix + str(next(self._ids))
        cmd.issued_us = int(time.time() * 1e6)
        fill(cmd)
        self.client.publish(self.base + topic, cmd.SerializeToString(), ack=True, timeout=self.timeout)
        deadline = time.monotonic() + self.timeout
        with self._lock:
            while cmd.id not in self._results:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CurvebusError("TIMEOUT", "no result for command %s from robot %s" % (cmd.id, self.id))
                self._lock.wait(left)
            result = self._results.pop(cmd.id)
        if check and result.status != rpb.RESULT_OK:
            raise CommandFailed(result)
        return result

    def telemetry(self, timeout=None):
        """Iterates over telemetry samples as they arrive."""
        seen = 0
        while True:
            with self._lock:
                if not self._lock.wait_for(lambda: len(self._telemetry) > seen, timeout):
                    return
                batch = self._telemetry[seen:]
                seen = len(self._telemetry)
            for t in batch:
                yield t

    def wait_until_stopped(self, timeout=30.0, still=0.6):
        """Waits until the encoder ticks have not changed for ``still`` seconds."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        for t in self.telemetry(timeout=2.0):
            ticks = (t.left_forward_ticks, t.right_forward_ticks, t.left_reverse_ticks, t.right_reverse_ticks,
                     t.left_forward_ticks_turns, t.right_forward_ticks_turns, t.left_reverse_ticks_turns,
                     t.right_reverse_ticks_turns)
            now = time.monotonic()
            if ticks != last:
                last, since = ticks, now
            elif now - since >= still:
                return True
            if now > deadline:
                return False
        return False

    def close(self):
        self._stop_keepalive()

    # ---------------------------------------------------------------- internals
    def _move(self, field, amount_field, amount, speed_pct):
        def fill(c):
            motion = getattr(c, field)
            setattr(motion, amount_field, int(amount))
            motion.speed_pct = int(speed_pct)

        result = self.send(fill)
        self._start_keepalive()
        return result

    def _on_message(self, m):
        with self._lock:
            if m.topic.endswith("/ack"):
                r = rpb.CommandResult()
                r.ParseFromString(m.payload)
                if r.id.startswith(self._prefix):
                    self._results[r.id] = r
            else:
                t = rpb.Telemetry()
                t.ParseFromString(m.payload)
                self._telemetry.append(t)
                del self._telemetry[:-1000]
            self._lock.notify_all()

    def _start_keepalive(self):
        with self._lock:
            self._moving = True
            if self._ka_thread is not None:
                return
            self._ka_thread = threading.Thread(target=self._keepalive_loop, daemon=True)
            self._ka_thread.start()

    def _stop_keepalive(self):
        with self._lock:
            self._moving = False
            t, self._ka_thread = self._ka_thread, None
            self._lock.notify_all()
        if t is not None and t is not threading.current_thread():
            t.join()

    def _keepalive_loop(self):
        while True:
            with self._lock:
                self._lock.wait_for(lambda: not self._moving, self._keepalive_period)
                if not self._moving:
                    return
            cmd = rpb.Command()
            cmd.id = self._prefix + "ka-" + str(next(self._ids))
            cmd.issued_us = int(time.time() * 1e6)
            cmd.keepalive.SetInParent()
            try:
                self.client.publish(self.base + "cmd", cmd.SerializeToString(), ack=False)
            except CurvebusError:
                return
