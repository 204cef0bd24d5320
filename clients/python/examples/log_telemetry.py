#!/usr/bin/python3
"""Log a robot's telemetry to CSV: one row per sample, with a header.

    log_telemetry.py --robot alex --count 100 --out telemetry.csv
    log_telemetry.py --robot alex --seconds 60            # to stdout
"""
import argparse
import csv
import sys
import time

import curvebus
from curvebus import robot_pb2

FIELDS = [f.name for f in robot_pb2.Telemetry.DESCRIPTOR.fields]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--robot", default="alex")
    p.add_argument("--count", type=int, default=0, help="stop after N rows (0 = no limit)")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (0 = no limit)")
    p.add_argument("--out", help="CSV file (default: stdout)")
    p.add_argument("--endpoint")
    p.add_argument("--server-key")
    p.add_argument("--key")
    p.add_argument("--home")
    a = p.parse_args()
    out = open(a.out, "w", newline="") if a.out else sys.stdout
    rows = 0
    try:
        with curvebus.connect(a.endpoint, a.server_key, a.key, a.home) as client:
            client.subscribe("robot/%s/telemetry" % a.robot)
            writer = csv.writer(out)
            writer.writerow(["received_us", "publisher", "seq"] + FIELDS)
            deadline = time.monotonic() + a.seconds if a.seconds else None
            quiet_since = time.monotonic()
            done = False
            while not done:
                for m in client.messages(timeout=0.5):
                    t = robot_pb2.Telemetry()
                    t.ParseFromString(m.payload)
                    writer.writerow([m.published_us, m.publisher, m.seq] + [getattr(t, f) for f in FIELDS])
                    out.flush()
                    rows += 1
                    quiet_since = time.monotonic()
                    if a.count and rows >= a.count:
                        done = True
                        break
                    if deadline and time.monotonic() >= deadline:
                        break
                now = time.monotonic()
                if deadline and now >= deadline:
                    done = True
                elif not deadline and now - quiet_since > 10:
                    print("log_telemetry: no telemetry for 10 s", file=sys.stderr)
                    done = True
    except curvebus.CurvebusError as e:
        print("log_telemetry: %s" % e, file=sys.stderr)
        return 1
    finally:
        if a.out:
            out.close()
    if a.count and rows < a.count:
        print("log_telemetry: only %d of %d samples" % (rows, a.count), file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
