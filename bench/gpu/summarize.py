#!/usr/bin/env python3
"""Summarises what bench/gpu/run-on-gpu.sh wrote into OUT_DIR: one table row per dtype, in the columns of
bench/RESULTS.md, the self-check's row, and summary.json. Anything that was not measured is written as "not run" with its reason,
never as a number.

Usage: python3 bench/gpu/summarize.py OUT_DIR
"""
import json
import os
import sys

TARGETS = {"speedup": 2.0, "ratio_to_bound": 1.5, "extra_bytes_per_position": 1024}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        return {"ok": False, "reason": f"no result ({os.path.basename(path)}: {error})"}


def num(x, spec):
    """grpo_roc_bench writes a NaN or an infinite figure as null (JSON has neither): show it, never a number."""
    return "non-finite" if x is None else format(x, spec)


def mib(x):
    return "non-finite" if x is None else f"{x / 2**20:.1f} MiB"


def at_most(x, limit):
    return x is not None and x <= limit


def check_line(check, summary):
    """The self-check's row of RESULTS.md's "GPU check" table."""
    if not check.get("ok") and "cases" not in check:
        text = f"not run: {check.get('reason', '?')}"
    else:
        cases = check["cases"]
        failed = [c for c in cases if not c["ok"]]
        # An infinite "worst" (a NaN where a number was due) is written as null.
        worsts = [c["worst"] for c in cases]
        worst = None if None in worsts else max(worsts, default=0)
        text = f"{len(cases)} cases on {check['device']}, {len(failed)} failed; worst {num(worst, '.3g')} of tolerance"
        if failed:
            text += "; first failure: " + failed[0]["name"] + ": " + failed[0]["detail"]
    summary["selfCheck"] = check
    return f"| GPU check | result |\n|---|---|\n| self-check on the GPU (`grpo_roc_bench --check device`) | {text} |"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    rows = []
    summary = {"rows": []}
    for dtype in ("float32", "bfloat16"):
        ours = load(os.path.join(out, f"grpo-roc-{dtype}.json"))
        peer = load(os.path.join(out, f"torch-{dtype}.json"))
        entry = {"dtype": dtype, "grpoRoc": ours, "torch": peer}
        if ours.get("ok"):
            positions = ours["shape"][0] * ours["shape"][1]
            extra_pp = None if ours["peakExtraBytes"] is None else ours["peakExtraBytes"] / positions
            cells = [
                f"{num(ours['fusedMs'], '.2f')} ms",
                f"{num(ours['boundMs'], '.2f')} ms ({num(ours['copyGBps'], '.0f')} GB/s)",
                f"{num(ours['ratioToBound'], '.2f')}×",
                f"{mib(ours['peakExtraBytes'])} ({num(extra_pp, '.0f')} B/position)",
                f"{num(ours['maxAbsErrLogp'], '.2g')} / {num(ours['maxAbsErrGrad'], '.2g')}",
            ]
            entry["meetsBound"] = at_most(ours["ratioToBound"], TARGETS["ratio_to_bound"])
            entry["meetsMemory"] = at_most(extra_pp, TARGETS["extra_bytes_per_position"])
        else:
            cells = [f"not run: {ours.get('reason', '?')}"] + ["not run"] * 4
        if peer.get("ok"):
            eager = next(v for v in peer["variants"] if v["name"] == "eager")
            upcast = next((v for v in peer["variants"] if v["name"] == "eager-upcast"), None)
            text = f"{eager['ms']:.2f} ms, +{mib(eager['peakExtraBytes'])}"
            if upcast is not None:
                text += f"; upcast {upcast['ms']:.2f} ms, +{mib(upcast['peakExtraBytes'])}"
            cells.append(text)
            if ours.get("ok") and ours["fusedMs"]:
                speedup = eager["ms"] / ours["fusedMs"]
                cells.append(f"{speedup:.2f}×")
                entry["speedup"] = speedup
                entry["meetsSpeedup"] = speedup >= TARGETS["speedup"]
            else:
                cells.append("not run")
        else:
            cells += [f"not run: {peer.get('reason', '?')}", "not run"]
        device = ours.get("device") or peer.get("device") or "no device"
        rows.append(f"| {dtype} | {device} | " + " | ".join(cells) + " |")
        summary["rows"].append(entry)
    header = (
        "| dtype | device | grpo-roc fused | bound (copy bw) | ratio to bound | peak extra memory | max err logp / grad | "
        "PyTorch eager (time, peak extra) | speed-up vs eager |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    table = header + "\n" + "\n".join(rows) + "\n\n" + check_line(load(os.path.join(out, "check.json")), summary)
    print(table)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
