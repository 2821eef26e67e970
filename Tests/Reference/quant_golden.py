#!/usr/bin/env python3
"""Golden values for kvscope's uniform fake quantization (DESIGN.md §4) on SmolLM2 tensors.

Reads models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf with gguf-py (GGUFReader +
gguf.quants.dequantize), takes a few tensors as [out, in] float32 in the file's row order
(no Q/K un-permutation), quantizes them with numpy float32 arithmetic in the same operation
order as Sources/Quantization/UniformQuantizer.swift, and writes Tests/Golden/quant/fake_quant.json:

  per case: tensor, shape, bits, group (null = per channel), mode, count, codes_sha256 (sha256 of
  the integer codes as little-endian int32, row-major), ties ([flat index, code] wherever
  (x - min)/scale (or x/scale) lies within float epsilon of a half-integer, i.e. where another
  correct implementation could round the other way), rel_error = ||W - What||_F / ||W||_F (float64).

Run from the repository root:  python3 Tests/Reference/quant_golden.py
Optional: --dump-raw DIR writes each tensor as raw little-endian float32 DIR/<name>.f32 (for
checking the Swift side before a GGUF loader is wired; never committed).
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

MODEL = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = "Tests/Golden/quant/fake_quant.json"
TENSORS = ["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight"]
CASES = [  # bits, group, mode
    (4, 128, "asymmetric"),
    (3, 64, "asymmetric"),
    (2, 32, "asymmetric"),
    (8, None, "asymmetric"),
    (4, 128, "symmetric"),
]
F32 = np.float32


def quantize_group(x, bits, mode):
    """Codes, reconstruction and tie mask of one group (float32 throughout)."""
    if mode == "asymmetric":
        max_code = F32((1 << bits) - 1)
        lo, hi = x.min(), x.max()
        scale = F32((hi - lo) / max_code)
        if scale == 0:
            return np.zeros(x.shape, np.int32), np.full(x.shape, lo, F32), np.zeros(x.shape, bool)
        t = ((x - lo) / scale).astype(F32)
        q = np.clip(np.rint(t), 0, max_code).astype(np.int32)
        xhat = (q.astype(F32) * scale + lo).astype(F32)
    else:
        max_code = F32((1 << (bits - 1)) - 1)
        m = np.abs(x).max()
        scale = F32(m / max_code)
        if scale == 0:
            return np.zeros(x.shape, np.int32), np.zeros(x.shape, F32), np.zeros(x.shape, bool)
        t = (x / scale).astype(F32)
        q = np.clip(np.rint(t), -max_code, max_code).astype(np.int32)
        xhat = (q.astype(F32) * scale).astype(F32)
    frac = np.abs(t - np.floor(t) - F32(0.5))
    ties = frac <= F32(4) * np.finfo(F32).eps * np.maximum(F32(1), np.abs(t))
    return q, xhat, ties


def quantize(w, bits, group, mode):
    rows, cols = w.shape
    g = group or cols
    codes = np.empty(w.shape, np.int32)
    xhat = np.empty(w.shape, F32)
    ties = np.empty(w.shape, bool)
    for start in range(0, cols, g):
        end = min(start + g, cols)
        for r in range(rows):
            q, xh, t = quantize_group(w[r, start:end], bits, mode)
            codes[r, start:end], xhat[r, start:end], ties[r, start:end] = q, xh, t
    return codes, xhat, ties


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump-raw", metavar="DIR")
    args = ap.parse_args()
    reader = GGUFReader(MODEL)
    by_name = {t.name: t for t in reader.tensors}
    cases = []
    for name in TENSORS:
        t = by_name[name]
        w = np.ascontiguousarray(dequantize(t.data, t.tensor_type).astype(F32))
        out_dim, in_dim = int(t.shape[1]), int(t.shape[0])  # GGUF shape is [in, out]
        w = w.reshape(out_dim, in_dim)
        if args.dump_raw:
            os.makedirs(args.dump_raw, exist_ok=True)
            w.astype("<f4").tofile(os.path.join(args.dump_raw, name + ".f32"))
        norm = np.linalg.norm(w.astype(np.float64))
        for bits, group, mode in CASES:
            codes, xhat, ties = quantize(w, bits, group, mode)
            idx = np.flatnonzero(ties)
            rel = float(np.linalg.norm((w.astype(np.float64) - xhat.astype(np.float64))) / norm)
            cases.append({
                "tensor": name, "shape": [out_dim, in_dim], "bits": bits, "group": group, "mode": mode,
                "count": int(codes.size),
                "codes_sha256": hashlib.sha256(codes.astype("<i4").tobytes()).hexdigest(),
                "ties": [[int(i), int(codes.flat[i])] for i in idx],
                "rel_error": rel,
            })
            print(f"{name} b{bits} g{group} {mode}: rel_error {rel:.6f}, ties {len(idx)}", file=sys.stderr)
    doc = {"source": os.path.basename(MODEL), "generator": "Tests/Reference/quant_golden.py", "cases": cases}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
