#!/usr/bin/env python3
"""Times gguf-py's numpy dequantize over every tensor of the SmolLM2 GGUF (median of 3), and opening
the file with GGUFReader and listing its tensors; prints one JSON document.

Usage: python3 Tests/Reference/gguf_bench.py [MODEL.gguf]
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import gguf
from gguf.quants import dequantize

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    open_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = gguf.GGUFReader(MODEL)
        names = [(t.name, t.tensor_type.name, tuple(t.shape)) for t in r.tensors]
        open_times.append(time.perf_counter() - t0)
    times = []
    elements = 0
    for _ in range(3):
        elements = 0
        t0 = time.perf_counter()
        for t in r.tensors:
            values = dequantize(t.data, t.tensor_type)
            elements += values.size
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "model": os.path.relpath(MODEL, ROOT),
        "tool": "gguf-py " + getattr(gguf, "__version__", "0.19.0") + ", numpy " + np.__version__,
        "tensors": len(names),
        "elements": int(elements),
        "open_and_list_ms": round(statistics.median(open_times) * 1e3, 2),
        "dequantize_all_ms": round(statistics.median(times) * 1e3, 2),
        "dequantize_all_runs_ms": [round(t * 1e3, 2) for t in times],
    }))


if __name__ == "__main__":
    main()
