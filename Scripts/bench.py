#!/usr/bin/env python3
"""`make bench`: measures kvscope against its references in one run and writes BENCHMARKS.md.

Every figure is a median over repeated runs, quoted beside its reference measured in the same
run on the same machine, with the ratio. Sections are added as features land.
"""
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KVSCOPE = os.path.join(ROOT, ".build", "release", "kvscope")
QUICK = os.environ.get("KVSCOPE_BENCH_QUICK") == "1"  # skip the slow clean `make test`


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def kvscope_json(*args):
    out = subprocess.run([KVSCOPE, *args, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def median_time(fn, repeats=5, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def bench_svd():
    import numpy as np
    rows, cols = 4096, 1024
    log(f"singular values of {rows}x{cols}")
    mine = kvscope_json("bench", "svd", "--rows", str(rows), "--cols", str(cols), "--repeat", "5")
    a = np.random.default_rng(42).standard_normal((rows, cols)).astype(np.float32)
    ref, _ = median_time(lambda: np.linalg.svd(a, compute_uv=False))
    return [{
        "what": f"singular values of a {rows}x{cols} float32 matrix",
        "kvscope": f"{mine['median_s']:.3f} s (sgesdd JOBZ=N, OpenBLAS, {mine['blas_threads']} threads)",
        "reference": f"{ref:.3f} s (numpy {np.__version__} linalg.svd(compute_uv=False))",
        "ratio": ref / mine["median_s"], "goal": "≥ 2× faster",
    }]


def bench_clean_make_test():
    log("clean `make test` in a fresh clone (takes minutes)")
    tmp = tempfile.mkdtemp(prefix="kvscope-clean-")
    try:
        clone = os.path.join(tmp, "kvscope")
        subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
        # Reuse the downloaded wheels so the figure measures build + tests, not the network.
        shutil.copytree(os.path.join(ROOT, "models"), os.path.join(clone, "models"), symlinks=True)
        t0 = time.perf_counter()
        r = subprocess.run(["make", "test"], cwd=clone, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        ok = r.returncode == 0
        summary = [l for l in r.stdout.splitlines() + r.stderr.splitlines() if "Test run with" in l]
        return [{
            "what": "clean `make test` (fresh clone, models present, cold .build)",
            "kvscope": f"{elapsed / 60:.1f} min ({'passed' if ok else 'FAILED'}; {summary[-1].strip() if summary else 'no summary'})",
            "reference": "CI limit 90 min; goal 15 min",
            "ratio": 15 * 60 / elapsed, "goal": "under 15 min",
        }]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_report(sections):
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        "# BENCHMARKS",
        "",
        "Written by `make bench` (Scripts/bench.py). Every row is measured in the same run, on the same",
        "machine, against the reference beside it; times are medians. Ratio = reference / kvscope",
        "(above 1 means kvscope is faster), or goal / measured where the reference is a limit.",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {rev}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "",
    ]
    for title, rows in sections:
        lines += [f"## {title}", "", "| what | kvscope | reference | ratio | goal |", "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['what']} | {r['kvscope']} | {r['reference']} | {r['ratio']:.2f}× | {r['goal']} |")
        lines.append("")
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines))
    log("wrote BENCHMARKS.md")


def main():
    sections = [("Ground floor: LinearAlgebra", bench_svd())]
    if not QUICK:
        sections.append(("Ground floor: test suite", bench_clean_make_test()))
    write_report(sections)


if __name__ == "__main__":
    main()
