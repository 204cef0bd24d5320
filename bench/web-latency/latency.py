#!/usr/bin/python3
"""Command -> ack latency from the control page (headless Chromium, through
curvebus-web) and from the CLI (`curvebus pub --json`, straight to the broker),
in the same run, against the same broker, agent and alex-sim.

One command outstanding at a time: a `stop` (always obeyed, written to the
Arduino and acked when alex-sim confirms it), telemetry polling off so no poll
waits in front of it.  The page's figure is what its ack log shows (publish ->
the agent's ack back in the page, performance.now()); the CLI's is from writing
the line into `curvebus pub --json` to reading the ack from `curvebus sub
--json`, both by this script.  The two alternate in rounds.

Usage: latency.py [COUNT] (per client, default 200); env BAUD (default 115200)
and the binaries as for tests/web/e2e (CURVEBUS_*_BIN, CURVEBUS_CLI_BIN).
"""
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "web", "e2e"))
from webenv import WebStack, wait_for  # noqa: E402

from selenium.webdriver.common.by import By  # noqa: E402

CLI = os.environ["CURVEBUS_CLI_BIN"]
TOP_ROW = """const r = document.querySelector('#acks tr');
return r ? [r.dataset.id, r.dataset.status, r.dataset.latencyMs || ''] : null;"""


def percentile(xs, p):
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))  # nearest rank
    return s[k]


class PageClient:
    def __init__(self, stack):
        self.d = stack.browser()
        self.d.get(stack.url)
        assert wait_for(lambda: self._attr("broker-fp", "textContent").startswith("b2:"), 30)
        self.d.find_element(By.CSS_SELECTOR, '[data-testid="key-file"]').send_keys(stack.key_file("dev"))
        assert wait_for(lambda: self._attr("conn-state", "data-state") == "registered", 30), "page not registered"
        assert wait_for(lambda: self._attr("robot-alex", "data-online") == "true", 30), "alex not online"
        self.stop_btn = self.d.find_element(By.CSS_SELECTOR, '[data-testid="drive-stop"]')

    def _attr(self, tid, name):
        try:
            e = self.d.find_element(By.CSS_SELECTOR, '[data-testid="%s"]' % tid)
            return (e.get_attribute(name) or "") if name != "textContent" else e.text
        except Exception:
            return ""

    def once(self):
        before = self.d.execute_script(TOP_ROW)
        self.stop_btn.click()
        got = {}

        def done():
            r = self.d.execute_script(TOP_ROW)
            if r and r != before and r[0] != (before or [None])[0] and r[1] != "PENDING":
                got["r"] = r
                return True
            return False
        assert wait_for(done, 30, 0.005), "no ack in the page"
        id_, status, ms = got["r"]
        assert status == "RESULT_OK", got["r"]
        return float(ms)


class CliClient:
    def __init__(self, stack):
        env = dict(os.environ, CURVEBUS_HOME=stack.home, CURVEBUS_ENDPOINT=stack.endpoint)
        self.sub = subprocess.Popen([CLI, "sub", "robot/alex/ack", "--json"], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, bufsize=0)
        self.pub = subprocess.Popen([CLI, "pub", "--json", "robot/alex/cmd"], env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, bufsize=0)
        self.buf = b""
        self.n = 0
        time.sleep(1.0)  # both registered (and the subscription in place)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = os.read(self.sub.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("curvebus sub ended")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def once(self):
        self.n += 1
        cid = "cli-%d-%d" % (os.getpid(), self.n)
        t0 = time.time()
        line = json.dumps({"id": cid, "issuedUs": str(int(t0 * 1e6)), "stop": {}}) + "\n"
        self.pub.stdin.write(line.encode())
        while True:
            m = json.loads(self._line())
            if m["payload"].get("id") == cid:
                t1 = time.time()
                assert m["payload"].get("status") == "RESULT_OK", m
                return (t1 - t0) * 1000.0

    def close(self):
        for p in (self.pub, self.sub):
            if p.poll() is None:
                p.terminate()
        for p in (self.pub, self.sub):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    baud = int(os.environ.get("BAUD", "115200"))
    stack = WebStack(baud=baud, telemetry_ms=0)
    cli = None
    try:
        stack.start()
        page = PageClient(stack)
        cli = CliClient(stack)
        for c in (page, cli):  # warm up: first handshakes, first frames
            for _ in range(5):
                c.once()
        samples = {"page": [], "cli": []}
        rounds = 4
        for _ in range(rounds):
            for name, c in (("page", page), ("cli", cli)):
                for _ in range(count // rounds):
                    samples[name].append(c.once())
                    time.sleep(0.02)
        print("# %s, %d cores; alex-sim at %d baud (strict), telemetry polling off; `stop` commands, "
              "one outstanding; %d per client in %d alternating rounds" %
              (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.cpu_count(), baud, count, rounds))
        print()
        print("| client | path | n | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|---|")
        rows = (("page (headless Chromium)", "WebSocket -> curvebus-web -> broker", samples["page"]),
                ("CLI (`curvebus pub --json`)", "TCP -> broker", samples["cli"]))
        for label, path, xs in rows:
            print("| %s | %s | %d | %.2f | %.2f | %.2f |" %
                  (label, path, len(xs), percentile(xs, 50), percentile(xs, 99), max(xs)))
    finally:
        if cli:
            cli.close()
        stack.close()


if __name__ == "__main__":
    main()
