#!/usr/bin/python3
"""The control page end to end in a real browser: headless Chromium opens the
page served by curvebus-web, which relays to a real broker; a real robot agent
drives alex-sim on a pseudo-terminal.  What a person would do, by clicking:
import the dev key, see alex online, hold forward, see telemetry grow and an OK
ack, press E-STOP and see motion refused until Clear, Clear, drive again; and a
key the broker does not know shows "key refused".

Run by ctest (tests/web/e2e/CMakeLists.txt) with the system interpreter; the
screenshots go to $CURVEBUS_E2E_ARTIFACTS (the build tree).  Timeouts are
liveness bounds only: generous, never a measurement.
"""
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webenv import WebStack, wait_for  # noqa: E402

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

ARTIFACTS = os.environ.get("CURVEBUS_E2E_ARTIFACTS", "")
LIVE = 30.0  # seconds: liveness bound for anything that involves the robot


def by_testid(tid):
    return (By.CSS_SELECTOR, '[data-testid="%s"]' % tid)


class Page:
    """The control page, read and driven through the DOM like a user."""

    def __init__(self, driver):
        self.d = driver

    def find(self, tid):
        return self.d.find_element(*by_testid(tid))

    def attr(self, tid, name):
        try:
            return self.find(tid).get_attribute(name) or ""
        except Exception:
            return ""

    def text(self, tid):
        try:
            return self.find(tid).text
        except Exception:
            return ""

    def state(self):
        return self.attr("conn-state", "data-state")

    def ticks(self):
        t = self.text("tel-ticks")
        return int(t) if t.isdigit() else -1

    def rows(self):
        """The ack log, newest first: dicts of the row's data attributes and cells."""
        out = []
        for tr in self.d.find_elements(By.CSS_SELECTOR, '[data-testid="ack-log"] tbody tr'):
            cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            out.append({"id": tr.get_attribute("data-id"), "action": tr.get_attribute("data-action"),
                        "status": tr.get_attribute("data-status"), "result": cells[3] if len(cells) > 3 else "",
                        "latency": tr.get_attribute("data-latency-ms")})
        return out

    def row(self, action, after=0):
        """The newest row for `action` among rows added after the first `after` ones."""
        rows = self.rows()
        fresh = rows[: max(0, len(rows) - after)]
        for r in fresh:
            if r["action"] == action and r["status"] != "PENDING":
                return r
        return None

    def wait_row(self, action, after, timeout=LIVE):
        found = {}

        def done():
            r = self.row(action, after)
            if r:
                found.update(r)
            return bool(r)
        assert wait_for(done, timeout), "no finished '%s' row in the ack log: %r" % (action, self.rows()[:8])
        return found

    def hold(self, tid, seconds, sample=None):
        """Press and hold a pad button with the mouse, let go after `seconds`.
        `sample(t)` is called while held, every 0.1 s."""
        btn = self.find(tid)
        ActionChains(self.d).click_and_hold(btn).perform()
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < seconds:
                if sample:
                    sample(time.monotonic() - t0)
                time.sleep(0.1)
        finally:
            ActionChains(self.d).release(btn).perform()


class WebEndToEnd(unittest.TestCase):
    def setUp(self):
        self.stack = None
        try:
            # The dead-man time is 1 s here, not 500 ms: a browser's timers on a
            # starved CI machine may stall a keepalive for a few hundred ms.  The
            # page's behaviour does not change (a keepalive every 150 ms).
            self.stack = WebStack(agent_args=["--deadman-ms", "1000"]).start()
            self.driver = self.stack.browser()
        except Exception:
            if self.stack:
                self.keep_logs("setup")
                self.stack.close()
            raise
        self.page = Page(self.driver)

    def tearDown(self):
        result = self._outcome.result
        if any(t is self for t, _ in result.failures + result.errors):
            self.screenshot("failed-" + self._testMethodName)
            self.keep_logs(self._testMethodName)
        self.stack.close()

    def screenshot(self, name):
        if not ARTIFACTS:
            return ""
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, name + ".png")
        try:
            self.driver.save_screenshot(path)
        except Exception:
            return ""
        return path

    def keep_logs(self, tag):
        if not ARTIFACTS or not self.stack:
            return
        dest = os.path.join(ARTIFACTS, "logs-" + tag)
        os.makedirs(dest, exist_ok=True)
        for f in os.listdir(self.stack.home):
            if f.endswith(".log"):
                shutil.copy(os.path.join(self.stack.home, f), dest)
        if self.stack.driver is not None:
            try:
                with open(os.path.join(dest, "browser-console.log"), "w") as out:
                    for e in self.stack.driver.get_log("browser"):
                        out.write("%s %s\n" % (e.get("level"), e.get("message")))
            except Exception:
                pass

    def open_page(self):
        self.driver.get(self.stack.url)
        self.assertTrue(wait_for(lambda: self.page.text("broker-fp").startswith("b2:"), LIVE),
                        "the page never showed the broker key fingerprint")

    def import_key(self, name):
        self.page.find("key-file").send_keys(self.stack.key_file(name))

    def console_errors(self):
        """Browser console lines that mean the page broke: CSP violations, script errors."""
        bad = []
        for e in self.driver.get_log("browser"):
            msg = e.get("message", "")
            if "favicon.ico" in msg:
                continue
            if e.get("level") == "SEVERE" or "Content Security Policy" in msg:
                bad.append(msg)
        return bad

    def test_drive_estop_and_clear_with_the_dev_key(self):
        page = self.page
        self.open_page()
        # The fingerprint is the one the broker logged at start.
        self.assertEqual(page.text("broker-fp"), self.stack.broker_fingerprint())

        self.import_key("dev")
        self.assertTrue(wait_for(lambda: page.state() == "registered", LIVE),
                        "not registered: %s / %s" % (page.state(), page.text("conn-state")))
        self.assertIn("Registered as dev", page.text("conn-state"))
        self.assertTrue(wait_for(lambda: page.attr("robot-alex", "data-online") == "true", LIVE),
                        "alex never shown online: " + page.text("robots"))
        self.assertTrue(wait_for(lambda: "serial" in page.text("robot-alex-status") and
                                 "lease free" in page.text("robot-alex-status"), LIVE),
                        page.text("robot-alex-status"))
        self.assertEqual(page.text("drive-robot"), "alex")
        self.assertTrue(wait_for(lambda: page.ticks() >= 0, LIVE), "no telemetry shown")

        # Distance 0 = until released: the robot moves only while the page keeps
        # the lease with keepalives, so motion late in a 2.6 s hold (past twice
        # the dead-man time) proves they flow.  The picture for the docs is
        # taken mid-drive.
        page.find("distance").send_keys(Keys.HOME)
        self.assertEqual(page.attr("distance", "value"), "0")
        self.driver.execute_script("document.activeElement.blur()")
        before = page.ticks()
        seen = {}
        shot = {}

        def sample(t):
            seen[round(t, 1)] = page.ticks()
            if t >= 1.8 and not shot:  # between the two windows below
                shot["path"] = self.screenshot("web-page")
        page.hold("drive-forward", 2.6, sample)
        ack = page.wait_row("forward", 0)
        self.assertEqual(ack["status"], "RESULT_OK", ack)
        self.assertEqual(ack["result"], "OK")
        self.assertGreater(float(ack["latency"]), 0.0)
        stop = page.wait_row("stop", 0)
        self.assertEqual(stop["status"], "RESULT_OK", stop)
        self.assertTrue(wait_for(lambda: page.ticks() > before, LIVE), "telemetry did not grow")
        # Without keepalives the robot would stand still from about 1.3 s on
        # (dead-man at 1 s, STOP confirmed, next telemetry).
        early = [v for t, v in seen.items() if 1.4 <= t <= 1.75]
        late = [v for t, v in seen.items() if t >= 2.2]
        self.assertTrue(late and early and max(late) > max(early),
                        "not moving after the dead-man time while held: %r" % sorted(seen.items()))
        self.assertIn("keepalives acknowledged", self.driver.find_element(By.ID, "keepalives").text)
        self.assertFalse(any(r["id"] == "deadman" for r in page.rows()), "the agent's dead-man stop fired")
        self.assertTrue(wait_for(lambda: "stopped" in page.text("robot-alex-status"), LIVE),
                        page.text("robot-alex-status"))

        # E-STOP latches; motion is refused with the reason in plain words.
        n = len(page.rows())
        page.find("estop").click()
        estop = page.wait_row("estop", n)
        self.assertEqual(estop["status"], "RESULT_OK", estop)
        self.assertTrue(wait_for(lambda: page.find("estop-banner").is_displayed(), LIVE))
        self.assertTrue(wait_for(lambda: "E-STOP LATCHED" in page.text("robot-alex-status"), LIVE))
        n = len(page.rows())
        page.hold("drive-forward", 0.4)
        refused = page.wait_row("forward", n)
        self.assertEqual(refused["status"], "RESULT_REJECTED_ESTOP_LATCHED", refused)
        self.assertIn("e-stop latched", refused["result"])
        self.assertIn("e-stop latched", page.text("notice"))
        self.screenshot("web-page-estop")

        # Clear (its own topic and right), then motion is accepted again.
        n = len(page.rows())
        page.find("clear-estop").click()
        cleared = page.wait_row("clear_estop", n)
        self.assertEqual(cleared["status"], "RESULT_OK", cleared)
        self.assertTrue(wait_for(lambda: not page.find("estop-banner").is_displayed(), LIVE))
        self.assertTrue(wait_for(lambda: "no e-stop" in page.text("robot-alex-status"), LIVE))
        n = len(page.rows())
        page.hold("drive-forward", 0.5)
        again = page.wait_row("forward", n)
        self.assertEqual(again["status"], "RESULT_OK", again)

        # The keyboard drives too: an arrow key held, then let go, is forward then
        # stop — also with the focus still on the file picker the key came from.
        n = len(page.rows())
        self.driver.execute_script("arguments[0].focus()", page.find("key-file"))
        ActionChains(self.driver).key_down(Keys.ARROW_UP).perform()
        time.sleep(0.5)
        ActionChains(self.driver).key_up(Keys.ARROW_UP).perform()
        key_fwd = page.wait_row("forward", n)
        self.assertEqual(key_fwd["status"], "RESULT_OK", key_fwd)
        self.assertTrue(wait_for(lambda: (page.row("stop", n) or {}).get("status") == "RESULT_OK", LIVE))

        self.assertEqual(self.console_errors(), [])
        if shot.get("path"):
            print("screenshot: " + shot["path"])

    def test_a_key_not_in_the_allow_list_shows_key_refused(self):
        page = self.page
        self.open_page()
        self.import_key("stranger")
        self.assertTrue(wait_for(lambda: page.state() == "key-refused", LIVE),
                        "state %s: %s" % (page.state(), page.text("conn-state")))
        self.assertIn("key refused", page.text("conn-state").lower())
        # Final: no reconnect loop, nothing to drive with.
        time.sleep(1.5)
        self.assertEqual(page.state(), "key-refused")
        self.assertFalse(page.find("estop").is_enabled())
        self.assertFalse(page.find("drive-forward").is_enabled())
        self.screenshot("web-page-key-refused")

    def test_the_page_says_reconnecting_while_the_broker_is_gone_and_registers_again(self):
        page = self.page
        self.open_page()
        self.import_key("dev")
        self.assertTrue(wait_for(lambda: page.state() == "registered", LIVE), page.state())
        self.assertTrue(wait_for(lambda: page.attr("robot-alex", "data-online") == "true", LIVE))
        self.stack.kill_broker()
        self.assertTrue(wait_for(lambda: page.state() == "reconnecting", LIVE), page.state())
        self.assertIn("reconnecting", page.text("conn-state"))
        self.assertFalse(page.find("drive-forward").is_enabled())
        self.stack.start_broker()
        self.assertTrue(wait_for(lambda: page.state() == "registered", LIVE), page.state())
        # Subscriptions came back with the session: the agent's new presence and
        # status arrive, and a command is acked again.
        self.assertTrue(wait_for(lambda: page.attr("robot-alex", "data-online") == "true", LIVE))
        n = len(page.rows())
        page.find("drive-stop").click()
        stop = page.wait_row("stop", n)
        self.assertEqual(stop["status"], "RESULT_OK", stop)

    def test_a_key_made_in_the_page_is_offered_for_download_and_stored_only_when_asked(self):
        page = self.page
        d = self.driver
        self.open_page()
        d.find_element(By.CSS_SELECTOR, "details.generate summary").click()
        name = page.find("gen-name")
        name.clear()
        name.send_keys("tablet")
        page.find("generate").click()
        self.assertTrue(wait_for(lambda: "tablet" in page.text("key-state"), LIVE), page.text("key-state"))
        self.assertIn("memory only", page.text("key-state"))
        # Downloaded as a person would, by clicking the links.
        downloads = self.stack.path("downloads")
        os.makedirs(downloads, exist_ok=True)
        d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})

        def download(tid, fname):
            page.find(tid).click()
            path = os.path.join(downloads, fname)
            self.assertTrue(wait_for(lambda: os.path.exists(path), LIVE), os.listdir(downloads))
            with open(path) as f:
                return f.read()
        public = download("download-tablet", "tablet")
        secret = download("download-tablet_secret", "tablet_secret")
        self.assertIn("public-key", public)
        self.assertNotIn("secret-key", public)
        self.assertIn("secret-key", secret)
        self.assertIn('name = "tablet"', public)
        self.assertEqual(page.attr("download-tablet", "download"), "tablet")
        self.assertEqual(page.attr("download-tablet_secret", "download"), "tablet_secret")
        # Not in the allow-list yet: the broker refuses it.
        page.find("connect").click()
        self.assertTrue(wait_for(lambda: page.state() == "key-refused", LIVE), page.state())
        # Kept in memory only: nothing stored, gone after a reload.
        self.assertEqual(d.execute_script("return localStorage.length"), 0)
        d.refresh()
        self.assertTrue(wait_for(lambda: page.text("key-state").startswith("No key loaded"), LIVE))

        # "remember on this device": stored, and used again after a reload...
        page.find("remember").click()
        self.import_key("dev")
        self.assertTrue(wait_for(lambda: page.state() == "registered", LIVE), page.state())
        self.assertIsNotNone(d.execute_script("return localStorage.getItem('curvebus.key.v1')"))
        d.refresh()
        self.assertTrue(wait_for(lambda: page.state() == "registered", LIVE), "the remembered key was not used")
        self.assertIn("remembered on this device", page.text("key-state"))
        # ...until "forget": nothing stored, no key after a reload.
        page.find("forget").click()
        self.assertEqual(d.execute_script("return localStorage.length"), 0)
        self.assertEqual(page.state(), "idle")
        d.refresh()
        self.assertTrue(wait_for(lambda: page.text("key-state").startswith("No key loaded"), LIVE))
        self.assertEqual(self.console_errors(), [])


if __name__ == "__main__":
    unittest.main()
