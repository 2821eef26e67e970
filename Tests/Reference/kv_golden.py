#!/usr/bin/env python3
"""Small numpy goldens for the KVCompression engine (Tests/KVCompressionTests/GoldenTests.swift).

The input matrices are not stored: they come from a closed formula evaluated in double precision
with the C library's sin (Python's math.sin; Swift's Glibc.sin is the same libm), then rounded to
float32, so Swift rebuilds bit-identical inputs. The formula (i, j 0-based):

    wave(i, j, s) = sin(0.5 + 1.618*s + 0.7*i*(1 + 0.1*s) + 1.3*j + 1.1*i*j)
    plain(rows, cols, s)[i, j] = float32(sum_{q<6} 0.6^q * wave(i, q, s) * wave(q, j, s + 0.5) + 0.1 * wave(i, j, s + 0.25))
    X[t, c]    = float32(wave(t, c, 11) * (1 + 2 * (c % 7 == 0)))              T x d   (outlier channels)
    W[i, c]    = float32(sum_{q<8} wave(i, q, 21) * wave(q, c, 22) / 8 + 0.05 * wave(i, c, 23))  d_kv x d
    K          = X @ W.T (float64, from the float32 X and W)

Outputs (all float64 math, numpy.linalg):
  spectra: singular values and energy ranks of plain(48, 96, 1), plain(96, 48, 2), plain(40, 40, 3)
  gram:    singular values of K (for the Gram route KᵀK -> eigenvalues)
  errors:  for the bases weights / activations / asvd (S = diag((mean|x| + 1e-6)^0.5)):
           e_w(r) = ||W - U_r U_r^T W|| / ||W|| and e_kv(r, 16) = ||K - K U_r U_r^T|| / ||K||, r = 0..d_kv,
           by explicit reconstruction; and for activations e_kv(r, b) with b = 4, g = 8 and b = 3, one group
           per token: c = U_r^T k quantized asymmetrically per token in groups along the r channels
           (DESIGN.md §4, float32 arithmetic, round half to even), k_hat = U_r c_hat.
           The activation basis U (eigh, descending) is stored too: quantized errors depend on the
           exact directions inside near-degenerate eigenspaces, so the table is checked exactly on
           numpy's U and only loosely on kvscope's own float32 eigenvectors. Every basis has canonical
           column signs (largest-magnitude entry positive). `hybrid` is ErrorModel's b < 16 estimator
           (rank tail from all tokens, quantization error of the kept features from the first 64 rows).

Usage: python3 Tests/Reference/kv_golden.py   (rewrites Tests/Golden/kv/kv_golden.json)
"""
import json
import math
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Golden", "kv", "kv_golden.json")
LEVELS = (0.9, 0.95, 0.99)
T, D, DKV = 256, 64, 32
HYBRID_SAMPLES = 64


def wave(i, j, s):
    return math.sin(0.5 + 1.618 * s + 0.7 * i * (1 + 0.1 * s) + 1.3 * j + 1.1 * i * j)


def plain(rows, cols, s):
    return np.array([[sum(0.6 ** q * wave(i, q, s) * wave(q, j, s + 0.5) for q in range(6)) + 0.1 * wave(i, j, s + 0.25)
                      for j in range(cols)] for i in range(rows)], dtype=np.float64).astype(np.float32)


def inputs():
    x = np.array([[wave(t, c, 11) * (1 + 2 * (c % 7 == 0)) for c in range(D)] for t in range(T)]).astype(np.float32)
    w = np.array([[sum(wave(i, q, 21) * wave(q, c, 22) for q in range(8)) / 8 + 0.05 * wave(i, c, 23)
                   for c in range(D)] for i in range(DKV)]).astype(np.float32)
    return x, w


def energy_rank(sigma, p):
    energy = np.cumsum(np.asarray(sigma, dtype=np.float64) ** 2)
    if energy[-1] <= 0:
        return 0
    return int(np.searchsorted(energy, p * energy[-1], side="left") + 1)


def spectrum(m):
    s = np.linalg.svd(m.astype(np.float64), compute_uv=False)
    return {"rows": m.shape[0], "cols": m.shape[1], "singular_values": s.tolist(),
            "energy_rank": {str(p): energy_rank(s, p) for p in LEVELS}}


def quantize_rows(c, bits, group):
    """Asymmetric fake quantization per row, groups of `group` along the row (None: whole row); float32."""
    c = c.astype(np.float32)
    out = np.empty_like(c)
    n = c.shape[1]
    g = group or n
    max_code = np.float32(2 ** bits - 1)
    for start in range(0, n, g):
        block = c[:, start:start + g]
        lo = block.min(axis=1, keepdims=True)
        hi = block.max(axis=1, keepdims=True)
        scale = ((hi - lo) / max_code).astype(np.float32)
        safe = np.where(scale == 0, np.float32(1), scale)
        q = np.clip(np.round((block - lo) / safe), 0, max_code).astype(np.float32)
        out[:, start:start + g] = np.where(scale == 0, lo, q * scale + lo)
    return out


def canonical_signs(u):
    """Flips each column so that its entry of largest magnitude is positive (ties: the lowest index,
    which is what argmax returns), the convention of kvscope's ProjectionBasis."""
    idx = np.argmax(np.abs(u), axis=0)
    signs = np.sign(u[idx, np.arange(u.shape[1])])
    signs[signs == 0] = 1
    return u * signs


def main():
    x, w = inputs()
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    k = x64 @ w64.T
    gram = k.T @ k

    bases = {}
    u, _, _ = np.linalg.svd(w64, full_matrices=True)
    bases["weights"] = canonical_signs(u)
    vals, vecs = np.linalg.eigh(gram)
    bases["activations"] = canonical_signs(vecs[:, ::-1])
    s = np.sqrt(np.abs(x64).mean(axis=0) + 1e-6)
    u, _, _ = np.linalg.svd(w64 * s[None, :], full_matrices=True)
    bases["asvd"] = canonical_signs(u)

    errors = {}
    for name, u in bases.items():
        ew, ekv = [], []
        for r in range(DKV + 1):
            ur = u[:, :r]
            ew.append(float(np.linalg.norm(w64 - ur @ (ur.T @ w64)) / np.linalg.norm(w64)))
            ekv.append(float(np.linalg.norm(k - (k @ ur) @ ur.T) / np.linalg.norm(k)))
        errors[name] = {"weight": ew, "kv16": ekv}

    quantized = []
    u = bases["activations"]
    for bits, group in ((4, 8), (3, None)):
        e = [1.0]
        for r in range(1, DKV + 1):
            ur = u[:, :r]
            c_hat = quantize_rows(k @ ur, bits, group).astype(np.float64)
            e.append(float(np.linalg.norm(k - c_hat @ ur.T) / np.linalg.norm(k)))
        quantized.append({"basis": "activations", "bits": bits, "group": group, "kv": e})

    # Hybrid estimator of ErrorModel (rank tail from the Gram of all T tokens, quantization of the kept
    # features from a sample: the first S rows), b = 4, g = 8:
    #   e_kv(r, b)^2 = ||K - K U_r U_r^T||^2 / ||K||^2 + ||C_s - Q_b(C_s)||^2 / ||K_s||^2,  C_s = K_s U_r.
    samples = k[:HYBRID_SAMPLES]
    hybrid = [1.0]
    for r in range(1, DKV + 1):
        ur = u[:, :r]
        c = (samples @ ur).astype(np.float32)
        q_err = float(np.sum((c.astype(np.float64) - quantize_rows(c, 4, 8).astype(np.float64)) ** 2))
        tail = float(np.linalg.norm(k - (k @ ur) @ ur.T) ** 2)
        hybrid.append(math.sqrt(tail / float(np.sum(k ** 2)) + q_err / float(np.sum(samples ** 2))))

    doc = {
        "generator": "Tests/Reference/kv_golden.py (numpy %s)" % np.__version__,
        "spectra": [spectrum(plain(48, 96, 1)), spectrum(plain(96, 48, 2)), spectrum(plain(40, 40, 3))],
        "kv": {"tokens": T, "hidden": D, "kv_size": DKV,
               "activations_u": bases["activations"].tolist(),
               "singular_values": np.linalg.svd(k, compute_uv=False).tolist(),
               "errors": errors, "quantized": quantized,
               "hybrid": {"bits": 4, "group": 8, "samples": HYBRID_SAMPLES, "kv": hybrid}},
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
