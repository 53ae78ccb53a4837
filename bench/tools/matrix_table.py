#!/usr/bin/env python3
"""Turns bench/matrix.sh's raw results into its markdown table.

    matrix_table.py RESULTS "CONTENDER ..." [SCALE_OUTPUT]

RESULTS holds tab-separated lines:
    L  row  label                          a row's label, in table order
    R  row  contender  round  k=v k=v ...  one measurement (the first key is the figure)
    N  row  contender                      not applicable ("–")
    F  row  contender  round  text         something went wrong: shown in the cell (⚠) and listed
Each cell shows the median over rounds of the row's figure (± the spread, (max-min)/median,
when there were several rounds), its ratio to nginx (and, for meshgate, to pingora), then
the secondary figures, then ⚠ and the flags' count.
"""
import statistics
import sys

# row prefix -> (figure key, unit, lower is better, [(secondary key, unit)])
SPEC = {
    "tiny": ("cpu", "µs/req", [("rps", "req/s"), ("p99", "ms p99"), ("user", "µs user")]),
    "16k": ("cpu", "µs/req", [("mibs", "MiB/s"), ("rps", "req/s")]),
    "1m": ("cpu", "µs/req", [("mibs", "MiB/s"), ("rps", "req/s")]),
    "close": ("cpu", "µs/req", [("rps", "req/s"), ("p99", "ms p99")]),
    "tls": ("cpu", "µs/req", [("rps", "req/s"), ("proto", "")]),
    "tls13-full": ("cpu", "µs/conn", [("rate", "conn/s"), ("resumed", "% resumed"), ("proxy_pct", "% proxy busy"), ("core1_pct", "% core 1 busy")]),
    "tls13-resume": ("cpu", "µs/conn", [("rate", "conn/s"), ("resumed", "% resumed"), ("proxy_pct", "% proxy busy"), ("core1_pct", "% core 1 busy")]),
    "tls12-full": ("cpu", "µs/conn", [("rate", "conn/s"), ("resumed", "% resumed"), ("proxy_pct", "% proxy busy"), ("core1_pct", "% core 1 busy")]),
    "tls12-resume": ("cpu", "µs/conn", [("rate", "conn/s"), ("resumed", "% resumed"), ("proxy_pct", "% proxy busy"), ("core1_pct", "% core 1 busy")]),
    "c1000": ("cpu", "µs/req", [("rps", "req/s"), ("p99", "ms p99")]),
    "c10000": ("cpu", "µs/req", [("rps", "req/s"), ("p99", "ms p99")]),
    "h2": ("cpu", "µs/req", [("rps", "req/s"), ("mode", "")]),
    "idle-rss": ("rss", "MiB", []),
    "idle-conn": ("kib", "KiB/conn", []),
    "inflight": ("kib", "KiB/req", [("held", "held")]),
    "scale": ("text", "", []),
}


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v, unit=""):
    if v is None:
        return "?"
    if unit == "req/s" or unit == "conn/s":
        s = f"{v / 1000:.1f}k" if v >= 10000 else f"{v:.0f}"
    elif abs(v) >= 100:
        s = f"{v:.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    if unit.startswith("%"):
        return (f"{v:.0f}" if v == round(v) else f"{v:.1f}") + unit
    return f"{s} {unit}".strip()


def ratio(a, b):
    r = a / b
    return f"{r:.0f}" if abs(r) >= 100 else f"{r:.1f}" if abs(r) >= 10 else f"{r:.2f}"


def main():
    path, contenders = sys.argv[1], sys.argv[2].split()
    scale_out = sys.argv[3] if len(sys.argv) > 3 else ""
    labels, order = {}, []
    meas, flags, na = {}, {}, set()
    for line in open(path, encoding="utf-8"):
        p = line.rstrip("\n").split("\t")
        if p[0] == "L":
            if p[1] not in labels:
                order.append(p[1])
            labels[p[1]] = p[2]
        elif p[0] == "R":
            kv = dict(x.split("=", 1) for x in p[4].split() if "=" in x)
            meas.setdefault((p[1], p[2]), []).append(kv)
        elif p[0] == "N":
            na.add((p[1], p[2]))
        elif p[0] == "F":
            flags.setdefault((p[1], p[2]), []).append(f"round {p[3]}: {p[4]}")

    def median(row, c, key):
        vals = [num(m.get(key)) for m in meas.get((row, c), [])]
        vals = [v for v in vals if v is not None]
        if not vals:
            return None, None
        med = statistics.median(vals)
        spread = (max(vals) - min(vals)) / med * 100 if len(vals) > 1 and med else None
        return med, spread

    def text(row, c, key):
        vals = [m.get(key) for m in meas.get((row, c), []) if m.get(key)]
        if not vals:
            return ""
        return vals[0].replace("_", " ") if key == "text" else vals[0]  # "text" codes spaces as _

    out = ["| cell | " + " | ".join(contenders) + " |", "|---|" + "---|" * len(contenders)]
    for row in order:
        key, unit, secondary = SPEC.get(row, ("cpu", "", []))
        cells = []
        base = {c: median(row, c, key)[0] for c in contenders}
        for c in contenders:
            fl = flags.get((row, c), [])
            if (row, c) in na:
                cells.append("–")
                continue
            if key == "text":
                t = text(row, c, "text")
                cells.append((t or "–") + (f" ⚠ {len(fl)}" if fl else ""))
                continue
            v, spread = median(row, c, key)
            if v is None:
                cells.append(("FAILED" if fl else "?") + (f" ⚠ {len(fl)}" if fl else ""))
                continue
            s = fmt(v, unit)
            if spread is not None:
                s += f" ±{spread:.0f}%"
            ratios = []
            if c != "nginx" and base.get("nginx"):
                ratios.append(f"{ratio(v, base['nginx'])}× nginx")
            if c == "meshgate" and base.get("pingora"):
                ratios.append(f"{ratio(v, base['pingora'])}× pingora")
            if ratios:
                s += " (" + ", ".join(ratios) + ")"
            for k, u in secondary:
                m, _ = median(row, c, k)
                if m is not None:
                    s += "; " + fmt(m, u)
                elif text(row, c, k):
                    s += "; " + text(row, c, k)
            if fl:
                s += f" ⚠ {len(fl)}"
            cells.append(s)
        out.append(f"| {labels[row]} | " + " | ".join(cells) + " |")
    print("\n".join(out))
    if flags:
        print("\n⚠ flags (what went wrong, per cell and contender):")
        for row in order:
            for c in contenders:
                for f in flags.get((row, c), []):
                    print(f"- {row} / {c} / {f}")
    else:
        print("\nNo flags: every request answered 2xx, no socket errors, resumption where asked.")
    if scale_out:
        print(f"\nbench/scale.sh output:\n```\n{open(scale_out, encoding='utf-8').read().rstrip()}\n```")


main()
