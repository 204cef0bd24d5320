"""A whole curvebus robot stack for browser tests, on 127.0.0.1 in a private home.

WebStack starts, each as a child process it stops again by PID:
  * curvebus-broker on the embedded default (it generates the keys `broker`,
    `dev` — admin, may publish everything, robot/+/cmd/clear-estop included —
    and `alex`, the robot agent, and an acl.toml that names only those two),
  * alex-sim on a pseudo-terminal (strict by default: it models a real Uno),
  * curvebus-robot-agent for robot `alex`,
  * curvebus-web relaying to the broker, serving web/static.
It also makes a `stranger` key pair that is NOT in the allow-list, and opens
headless Chromium (Debian's chromium + chromium-driver, python3-selenium).

Binaries come from environment variables set by ctest (see CMakeLists.txt):
CURVEBUS_BROKER_BIN, CURVEBUS_AGENT_BIN, ALEX_SIM_BIN, CURVEBUS_WEB_BIN.
Used by tests/web/e2e/test_e2e.py and bench/web-latency.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=20.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def write_zcert(path, public, secret=None):
    """A ZeroMQ certificate file (CZMQ's text format) with mode 0600."""
    lines = ["metadata", "    name = \"%s\"" % os.path.basename(path).replace("_secret", ""), "curve",
             "    public-key = \"%s\"" % public]
    if secret:
        lines.append("    secret-key = \"%s\"" % secret)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


class WebStack:
    def __init__(self, baud=115200, telemetry_ms=100, sim_args=(), agent_args=()):
        self.bins = {k: os.environ[k] for k in ("CURVEBUS_BROKER_BIN", "CURVEBUS_AGENT_BIN", "ALEX_SIM_BIN",
                                                "CURVEBUS_WEB_BIN")}
        self.home = tempfile.mkdtemp(prefix="curvebus-web-e2e-")
        self.procs = {}
        self.baud = baud
        self.telemetry_ms = telemetry_ms
        self.sim_args = list(sim_args)
        self.agent_args = list(agent_args)
        self.driver = None
        self.broker_port = free_port()
        self.web_port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.broker_port
        self.url = "http://127.0.0.1:%d/" % self.web_port

    # ------------------------------------------------------------ processes
    def path(self, *parts):
        return os.path.join(self.home, *parts)

    def spawn(self, name, argv):
        out = open(self.path(name + ".log"), "wb")
        self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        return self.procs[name]

    def log(self, name):
        try:
            with open(self.path(name + ".log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def alive(self, name):
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def start_broker(self):
        try:
            os.unlink(self.path("endpoint"))
        except FileNotFoundError:
            pass
        self.spawn("broker", [self.bins["CURVEBUS_BROKER_BIN"], "--home", self.home, "--bind", self.endpoint,
                              "--heartbeat-ms", "200", "--log-level", "info"])
        if not wait_for(lambda: os.path.exists(self.path("endpoint")) or not self.alive("broker")) or \
                not self.alive("broker"):
            raise RuntimeError("broker did not start:\n" + self.log("broker"))

    def kill_broker(self):
        p = self.procs["broker"]
        p.kill()
        p.wait()

    def start(self):
        self.start_broker()
        # A key pair the broker has never heard of.
        import zmq
        public, secret = zmq.curve_keypair()
        os.makedirs(self.path("outside"), exist_ok=True)
        write_zcert(self.path("outside", "stranger_secret"), public.decode(), secret.decode())

        tty = self.path("alex-tty")
        self.spawn("alex-sim", [self.bins["ALEX_SIM_BIN"], "--link", tty, "--baud", str(self.baud)] + self.sim_args)
        if not wait_for(lambda: os.path.exists(tty)):
            raise RuntimeError("alex-sim did not start:\n" + self.log("alex-sim"))
        self.spawn("agent", [self.bins["CURVEBUS_AGENT_BIN"], "--serial", tty, "--robot", "alex", "--baud",
                             str(self.baud), "--settle-ms", "0", "--telemetry-ms", str(self.telemetry_ms),
                             "--home", self.home, "--estop-file", self.path("estop-alex"),
                             "--log-level", "debug"] + self.agent_args)
        if not wait_for(lambda: "-> ready" in self.log("agent") and "agent for robot" in self.log("agent")):
            raise RuntimeError("robot agent did not come up:\n" + self.log("agent"))

        # CURVEBUS_WEB_ARGS: extra flags for the relay (e.g. --static DIR of an installed page).
        extra = os.environ.get("CURVEBUS_WEB_ARGS", "").split()
        self.spawn("web", [self.bins["CURVEBUS_WEB_BIN"], "--listen", "127.0.0.1:%d" % self.web_port,
                           "--broker", self.endpoint, "--server-key", self.path("keys", "broker")] + extra)
        if not wait_for(lambda: self._http_ok() or not self.alive("web")) or not self.alive("web"):
            raise RuntimeError("curvebus-web did not start:\n" + self.log("web"))
        return self

    def _http_ok(self):
        try:
            with socket.create_connection(("127.0.0.1", self.web_port), timeout=0.5):
                return True
        except OSError:
            return False

    def broker_fingerprint(self):
        m = re.search(r"server_fp=(b2:[0-9a-f]{16})", self.log("broker"))
        return m.group(1) if m else ""

    def key_file(self, name):
        if name == "stranger":
            return self.path("outside", "stranger_secret")
        return self.path("keys", name + "_secret")

    # -------------------------------------------------------------- browser
    def browser(self, width=1280, height=1000):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
            raise RuntimeError("headless Chromium needs Debian's chromium and chromium-driver "
                               "(scripts/setup-deps installs them)")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=%d,%d" % (width, height), "--user-data-dir=" + self.path("chromium-profile"),
                  "--no-first-run", "--disable-extensions", "--disable-background-networking"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER, log_path=self.path("chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=opts)
        return self.driver

    # ------------------------------------------------------------- clean up
    def close(self):
        if self.driver is not None:
            driver, self.driver = self.driver, None
            service_proc = getattr(getattr(driver, "service", None), "process", None)
            try:
                driver.quit()
            except Exception:
                pass
            if service_proc is not None and service_proc.poll() is None:
                service_proc.kill()
                service_proc.wait()
        for name in ("web", "agent", "alex-sim", "broker"):
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.home, ignore_errors=True)
