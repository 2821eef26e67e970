#!/usr/bin/env python3
"""Golden per-tensor results of `kvscope quantize` on SmolLM2 at its defaults (DESIGN.md §4, §5).

Reads models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf with gguf-py (GGUFReader +
gguf.quants.dequantize), takes every layer weight matrix (attn_q, attn_k, attn_v, attn_output,
ffn_gate, ffn_up, ffn_down: 7 x 30 = 210) as [out, in] float32 in the file's row order, quantizes
it with 4 bits, groups of 128 along the input dimension (the last group of a row shorter),
asymmetric, no outliers, with numpy float32 arithmetic in the operation order of
Sources/Quantization/UniformQuantizer.swift:
  scale = (max - min)/15, q = clip(rint((x - min)/scale), 0, 15), x^ = q*scale + min
(a constant group reconstructs exactly), and writes Tests/Golden/quant/smollm2_quantize.json:
  per tensor: tensor, role, layer, shape [out, in], rel_error = ||W - W^||_F/||W||_F (float64),
  bytes = n*b/8 + rows*ceil(cols/g)*4;  plus total_bytes, bits_per_weight = 8*total_bytes/n,
  and per role the aggregate rel_error sqrt(sum ||W - W^||^2 / sum ||W||^2).

Run from the repository root:  python3 Tests/Reference/quant_model_golden.py
"""
import json
import math
import os
import re
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

MODEL = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = "Tests/Golden/quant/smollm2_quantize.json"
BITS, GROUP = 4, 128
ROLES = {"attn_q": "q", "attn_k": "k", "attn_v": "v", "attn_output": "o",
         "ffn_gate": "gate", "ffn_up": "up", "ffn_down": "down"}
ORDER = list(ROLES.values())
F32 = np.float32


def fake_quantize(w, bits, group):
    """Asymmetric group fake quantization along rows, vectorized over rows (float32 throughout)."""
    rows, cols = w.shape
    max_code = F32((1 << bits) - 1)
    out = np.empty_like(w)
    for start in range(0, cols, group):
        x = w[:, start:start + group]
        lo = x.min(axis=1, keepdims=True)
        hi = x.max(axis=1, keepdims=True)
        scale = ((hi - lo) / max_code).astype(F32)
        safe = np.where(scale == 0, F32(1), scale)
        q = np.clip(np.rint(((x - lo) / safe).astype(F32)), 0, max_code).astype(F32)
        xhat = (q * scale + lo).astype(F32)
        out[:, start:start + group] = np.where(scale == 0, lo, xhat)
    return out


def main():
    reader = GGUFReader(MODEL)
    tensors = []
    for t in reader.tensors:
        m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", t.name)
        if not m or m.group(2) not in ROLES:
            continue
        out_dim, in_dim = int(t.shape[1]), int(t.shape[0])  # GGUF shape is [in, out]
        w = np.ascontiguousarray(dequantize(t.data, t.tensor_type).astype(F32)).reshape(out_dim, in_dim)
        xhat = fake_quantize(w, BITS, GROUP)
        w64 = w.astype(np.float64)
        norm2 = float(np.sum(w64 * w64))
        err2 = float(np.sum((w64 - xhat.astype(np.float64)) ** 2))
        groups = math.ceil(in_dim / GROUP)
        nbytes = out_dim * in_dim * BITS / 8 + out_dim * groups * 4
        tensors.append({"tensor": t.name, "role": ROLES[m.group(2)], "layer": int(m.group(1)),
                        "shape": [out_dim, in_dim], "rel_error": math.sqrt(err2 / norm2), "bytes": nbytes,
                        "_norm2": norm2, "_err2": err2})
    tensors.sort(key=lambda r: (r["layer"], ORDER.index(r["role"])))
    n = sum(r["shape"][0] * r["shape"][1] for r in tensors)
    total = sum(r["bytes"] for r in tensors)
    roles = []
    for role in ORDER:
        rs = [r for r in tensors if r["role"] == role]
        roles.append({"role": role, "tensors": len(rs),
                      "rel_error": math.sqrt(sum(r["_err2"] for r in rs) / sum(r["_norm2"] for r in rs))})
        print(f"{role:5s} {len(rs)} tensors, rel_error {roles[-1]['rel_error']:.6f}", file=sys.stderr)
    for r in tensors:
        del r["_norm2"], r["_err2"]
        r["bytes"] = int(r["bytes"]) if float(r["bytes"]).is_integer() else r["bytes"]
    doc = {"source": os.path.basename(MODEL), "generator": "Tests/Reference/quant_model_golden.py",
           "bits": BITS, "group": GROUP, "mode": "asymmetric", "tensors": tensors, "total_bytes": total,
           "bits_per_weight": 8 * total / n, "roles": roles}
    print(f"{len(tensors)} tensors, total {total:.0f} bytes, {8 * total / n:.4f} bits/weight", file=sys.stderr)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
