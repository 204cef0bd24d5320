#!/usr/bin/env python3
"""Markdown tables of the comparison harness's result lines (bench/run-throughput,
bench/run-latency).

Input lines (one per run): "round=R load=L1 <the harness's key=value line>", or
"round=R load=L1 system=S size=N subscribers=K FAILED". With several rounds,
each (system, size, subscribers) shows its median round by delivered rate
(throughput) or p99 (latency), and the ratio is that median over nats-tls's.

Usage: comparison_table.py throughput|latency|raw FILE
"""
import sys

ORDER = ["curvebus", "nats-tls", "nats", "mosquitto-qos0-tls", "mosquitto-qos0",
         "zmq-proxy-curve", "zmq-proxy-plain"]
NAMES = {"curvebus": "curvebus (public client, CURVE)", "nats-tls": "nats-server TLS",
         "nats": "nats-server plain", "mosquitto-qos0-tls": "Mosquitto QoS 0 TLS",
         "mosquitto-qos0": "Mosquitto QoS 0 plain",
         "zmq-proxy-curve": "libzmq proxy CURVE+ZAP", "zmq-proxy-plain": "libzmq proxy plain",
         "curvebus-raw-peer": "curvebus, raw DEALER peer (no client library)"}


def parse(path):
    runs = []
    for line in open(path):
        kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
        if "system" not in kv:
            continue
        kv["failed"] = "FAILED" in line.split()
        if kv["system"].endswith("-paced"):  # --search runs; the table says which mode ran
            kv["system"] = kv["system"][: -len("-paced")]
        runs.append(kv)
    return runs


def num(kv, key):
    v = kv.get(key, "").rstrip("/s").rstrip("%")
    try:
        return float(v)
    except ValueError:
        return None


def fmt_rate(r):
    if r is None:
        return "?"
    return f"{r / 1e6:.2f}M" if r >= 1e6 else f"{r / 1e3:.0f}k"


def size_text(size):
    return "1 KiB" if size == "1024" else f"{size} B"


def group(runs, metric):
    """(size, subs, system) -> the median run by `metric` (failed runs only if all failed)."""
    by = {}
    for kv in runs:
        by.setdefault((int(kv["size"]), int(kv["subscribers"]), kv["system"]), []).append(kv)
    out = {}
    for key, lst in by.items():
        ok = [kv for kv in lst if not kv["failed"] and num(kv, metric) is not None]
        if not ok:
            out[key] = (lst[0], len(lst), [])
            continue
        ok.sort(key=lambda kv: num(kv, metric))
        med = ok[(len(ok) - 1) // 2]
        out[key] = (med, len(lst), [num(kv, metric) for kv in ok])
    return out


def sys_order(name):
    return ORDER.index(name) if name in ORDER else len(ORDER)


def throughput(runs):
    g = group(runs, "delivered_rate")
    all_runs = {}
    for kv in runs:
        all_runs.setdefault((int(kv["size"]), int(kv["subscribers"]), kv["system"]), []).append(kv)
    rounds = max((n for _, n, _ in g.values()), default=1)
    print("| payload | subs | system | msg/s at subscribers | vs nats-TLS | publisher msg/s "
          "| lost (sent − received) | lost per subscriber | broker dropped | seq gaps "
          "| server CPU % | client CPU % | drain s | load |")
    print("|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for size, subs, system in sorted(g, key=lambda k: (k[0], k[1], sys_order(k[2]))):
        kv, _, rates = g[(size, subs, system)]
        name = NAMES.get(system, system)
        if kv["failed"]:
            print(f"| {size_text(str(size))} | 1→{subs} | {name} | failed | | | | | | | | | | "
                  f"{kv.get('load', '?')} |")
            continue
        rate = num(kv, "delivered_rate")
        ref = g.get((size, subs, "nats-tls"))
        ratio = "?"
        if ref and not ref[0]["failed"] and num(ref[0], "delivered_rate"):
            ratio = f"{rate / num(ref[0], 'delivered_rate'):.2f}"
        spread, worst = "", ""
        if len(rates) > 1:
            spread = f" ({fmt_rate(min(rates))}–{fmt_rate(max(rates))})"
            losses = [num(r, "loss") for r in all_runs[(size, subs, system)] if not r["failed"]]
            losses = [x for x in losses if x is not None]
            if losses and max(losses) > (num(kv, "loss") or 0):
                worst = f"; worst round {max(losses):.2f}%"
        print(f"| {size_text(str(size))} | 1→{subs} | {name} | {fmt_rate(rate)}{spread} | {ratio} "
              f"| {fmt_rate(num(kv, 'publish_rate'))} | {kv.get('lost', '?')} ({kv.get('loss', '?')}{worst}) "
              f"| {kv.get('lost_per_sub', '?')} | {kv.get('broker_dropped', '–')} "
              f"| {kv.get('sequence_gaps', '–')} | {kv.get('server_cpu', '?').rstrip('%')} "
              f"| {kv.get('client_cpu', '?').rstrip('%')} | {kv.get('drain_s', '?')} "
              f"| {kv.get('load', '?')} |")
    print("\n*msg/s at subscribers: all subscribers together, from 20 % into the run to its end. "
          "publisher msg/s: publications the client accepted (a client may buffer them). lost: "
          "sent minus received per subscriber, summed, after the drain (drain s: from the "
          "publisher's stop until every subscriber had everything or nothing moved for 2 s). "
          "broker dropped: curvebus's `dropped` counter over the run; seq gaps: gap events seen "
          "by the subscribers' clients. CPU: % of one core while publishing. load: 1-minute load "
          "average when the run started.*")
    if rounds > 1:
        print(f"\n*Median of {rounds} rounds (min–max of the delivered rate in brackets); "
              "the other columns are the median round's.*")


def latency(runs):
    g = group(runs, "p99_us")
    rounds = max((n for _, n, _ in g.values()), default=1)
    print("| system | subs | achieved msg/s | samples | lost | p50 µs | p99 µs | p99.9 µs | max µs "
          "| server CPU % | client CPU % | load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for size, subs, system in sorted(g, key=lambda k: (k[0], k[1], sys_order(k[2]))):
        kv, _, p99s = g[(size, subs, system)]
        name = NAMES.get(system, system)
        if kv["failed"]:
            print(f"| {name} | {subs} | failed | | | | | | | | | {kv.get('load', '?')} |")
            continue
        spread = f" ({min(p99s):.0f}–{max(p99s):.0f})" if len(p99s) > 1 else ""
        print(f"| {name} | {subs} | {num(kv, 'achieved_rate'):.0f} | {kv.get('samples')} "
              f"| {kv.get('lost')} | {kv.get('p50_us')} | {kv.get('p99_us')}{spread} "
              f"| {kv.get('p999_us')} | {kv.get('max_us')} | {kv.get('server_cpu', '?').rstrip('%')} "
              f"| {kv.get('client_cpu', '?').rstrip('%')} | {kv.get('load', '?')} |")
    if rounds > 1:
        print(f"\n*Median of {rounds} rounds by p99 (min–max of p99 in brackets).*")


def raw(runs):
    # curvebus-bench-throughput (raw DEALER peers, pre-encoded frames, publisher batch 32)
    print("| payload | subs | broker capacity, raw peer (batch 32) msg/s | lost | load |")
    print("|---|---|---:|---:|---|")
    for kv in sorted(runs, key=lambda kv: (int(kv["size"]), int(kv["subscribers"]))):
        rate = None if kv["failed"] else num(kv, "delivered_rate")
        print(f"| {size_text(kv['size'])} | 1→{kv['subscribers']} | "
              f"{'failed' if rate is None else fmt_rate(rate)} | {kv.get('lost', '?')} "
              f"| {kv.get('load', '?')} |")


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    {"throughput": throughput, "latency": latency, "raw": raw}[mode](parse(path))
