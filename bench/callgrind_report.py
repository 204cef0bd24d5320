#!/usr/bin/env python3
"""The tables of bench/run-callgrind from its callgrind files.

Usage: callgrind_report.py DIR SENT RECEIVED TOP
DIR holds broker.cg, pub.cg and sub.cg (written at exit); Ir per message is the
process's total over publications SENT (the subscriber's: over RECEIVED). CURVE
boxes: calls of libsodium's crypto_box_easy_afternm (sent) and
crypto_box_open_easy_afternm (received), as libzmq makes one per ZeroMQ message;
messages per box counts the boxes that carry the publications (the broker's and
the subscriber's received, the publisher's sent).
"""
import re, subprocess, sys
tmp, count, received, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def dump_file(name):
    return f"{tmp}/{name}.cg"  # written at exit

def annotate(path, inclusive):
    """(program total, [(Ir, 'file:function [object]')]) of one callgrind file, highest
    first. Entries of one function split over several source files (inlined code) are
    merged: self costs add up, inclusive costs overlap, so the largest is kept."""
    out = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                          "--auto=no", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    total, merged, objects, in_table = 0, {}, {}, False
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        if re.match(r"^Ir\s+file:function", line):
            in_table = True
            continue
        if not in_table:
            continue
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        fn, obj = split(m.group(2))  # the object is left out when it repeats the line above's
        if obj:
            objects.setdefault(fn, obj)
        merged[fn] = max(merged.get(fn, 0), ir) if inclusive else merged.get(fn, 0) + ir
    funcs = sorted(((ir, f"?:{fn} [{objects.get(fn, '')}]") for fn, ir in merged.items()),
                   reverse=True)
    return total, funcs

def calls_to(path, function):
    """How many times `function` was called (the sum over its callers)."""
    out = subprocess.run(["callgrind_annotate", "--tree=caller", "--auto=no", "--threshold=100",
                          path], capture_output=True, text=True).stdout
    total, block = 0, []
    for line in out.splitlines():
        m = re.match(r"\s*[\d,]+\s+(?:\([^)]*\)\s+)?([<*])\s+(\S.*)$", line)
        if not m:
            block = []
            continue
        if m.group(1) == "<":
            block.append(m.group(2))
            continue
        fn, _ = split(m.group(2))
        if fn == function:
            for caller in block:
                c = re.search(r" \(([\d,]+)x\)", caller)
                total += int(c.group(1).replace(",", "")) if c else 0
        block = []
    return total

def callers_of_unnamed(path):
    """For functions without a symbol (0x...): their main caller that has one, so that
    a library's internals read as, e.g., '0x34cc0 (from crypto_onetimeauth_poly1305_update)'."""
    out = subprocess.run(["callgrind_annotate", "--tree=caller", "--auto=no", "--threshold=100",
                          path], capture_output=True, text=True).stdout
    named, callers = {}, []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?([<*])\s+(\S.*)$", line)
        if not m:
            callers = [] if not line.strip() else callers
            continue
        ir = int(m.group(1).replace(",", ""))
        fn, _ = split(re.sub(r" \([\d,]+x\)", "", m.group(3)).strip())
        if m.group(2) == "<":
            callers.append((ir, fn))
            continue
        if fn.startswith("0x"):
            best = [c for c in sorted(callers, reverse=True) if not c[1].startswith("0x")]
            if best:
                named[fn] = best[0][1].split("(", 1)[0]
        callers = []
    return named

OUTER = re.compile(r"^(\(below main\)|__libc_start_main.*|main|clone|start_thread|_start)$")

def split(entry):
    """'file:function [object]' -> (function, object basename)."""
    m = re.match(r"^([^:\s]*):(.*?)(?: \[([^\]]*)\])?$", entry)
    if not m:
        return entry, ""
    return m.group(2), (m.group(3) or "").rsplit("/", 1)[-1]

def short(entry, named):
    fn, obj = split(entry)
    if fn.startswith("0x"):  # no symbol (a library without debug information)
        via = f" (from {named[fn]})" if fn in named else ""
        fn = f"{obj} 0x{fn[2:].lstrip('0')}{via}"
    elif not fn.startswith("("):
        fn = fn.split("(", 1)[0] + "()"
    fn = fn.replace("|", "\\|")
    return fn if len(fn) <= 90 else fn[:87] + "..."

def informative(entry):
    fn, obj = split(entry)
    return not OUTER.match(fn) and not obj.startswith("ld-linux")

per = {"broker": count, "pub": count, "sub": max(received, 1)}
label = {"broker": "curvebus-broker", "pub": "client publisher (Client::publish, no ack)",
         "sub": "client subscriber (Client::subscribe handler)"}
rows, tops, named = [], {}, {}
for name in ("broker", "pub", "sub"):
    try:
        total, incl = annotate(dump_file(name), True)
        _, self_ = annotate(dump_file(name), False)
        named[name] = callers_of_unnamed(dump_file(name))
    except FileNotFoundError:
        total, incl, self_ = 0, [], []
        named[name] = {}
    rows.append((name, total))
    incl = [f for f in incl if informative(f[1])]
    tops[name] = (total, incl[:top], self_[:top])
print("| process | messages | total Ir | Ir / message | CURVE boxes sent / received "
      "| messages per box |")
print("|---|---:|---:|---:|---|---:|")
for name, total in rows:
    n = per[name]
    try:
        out_boxes = calls_to(dump_file(name), "crypto_box_easy_afternm")
        in_boxes = calls_to(dump_file(name), "crypto_box_open_easy_afternm")
    except FileNotFoundError:
        out_boxes = in_boxes = 0
    data_boxes = {"broker": in_boxes, "pub": out_boxes, "sub": in_boxes}[name]
    ratio = f"{n / data_boxes:.1f}" if data_boxes else "?"
    print(f"| {label[name]} | {n} | {total:,} | {total / n:,.0f} | {out_boxes:,} / {in_boxes:,} "
          f"| {ratio} |")
for name in ("broker", "pub", "sub"):
    total, incl, self_ = tops[name]
    n = per[name]
    print(f"\n#### {label[name]}: top {top} by inclusive Ir (main and thread entry points left "
          "out), and by self Ir\n")
    print("| inclusive Ir / msg | % | function | | self Ir / msg | % | function |")
    print("|---:|---:|---|---|---:|---:|---|")
    for i in range(max(len(incl), len(self_))):
        a = incl[i] if i < len(incl) else None
        b = self_[i] if i < len(self_) else None
        left = (f"{a[0] / n:,.0f} | {100 * a[0] / max(total, 1):.1f} | `{short(a[1], named[name])}`"
                if a else " | | ")
        right = (f"{b[0] / n:,.0f} | {100 * b[0] / max(total, 1):.1f} | `{short(b[1], named[name])}`"
                 if b else " | | ")
        print(f"| {left} | | {right} |")
