#!/usr/bin/env python3
"""Reference singular values of SmolLM2's W_k and W_v (DESIGN.md §4, "Spectra"), for kvscope's tests.

Reads the GGUF with the official gguf-py reader, dequantizes attn_k / attn_v of every layer with
gguf.quants.dequantize, and writes Tests/Golden/kv/smollm2_weight_spectra.json:
  layers[i].k / .v: rows, cols, singular_values (descending, float32 precision), energy_rank {0.9,0.95,0.99}.

Orientation: gguf-py returns a tensor as a numpy array of shape (ne1, ne0) = (out, in), which is
DESIGN.md's [out, in] order: W_k, W_v are [d_kv, d] = [192, 576].

Note on the basis: llama GGUF files store the rows of W_q and W_k permuted for adjacent-pair RoPE
(llama.cpp "norm" mode). Singular values are invariant to a row permutation, so these goldens hold
for either order; left singular vectors (the `weights` basis) are permuted with the rows, so a
basis compared against HF order must have the permutation undone first.

Singular values are computed in float64 from the float32 dequantized weights (the acceptance
tolerance of the Swift float32 LAPACK path is relative 1e-4). The script also times numpy's 60
SVDs (float32, values only, like kvscope's sgesdd path), best of 3, and prints it for
BENCHMARKS.md (not stored in the golden, which must not change between runs). On a loaded 2-core
machine multi-threaded OpenBLAS is pathological for these small matrices (~1 s per SVD measured);
run with OPENBLAS_NUM_THREADS=1 for a fair figure.

Usage: python3 Tests/Reference/kv_weight_spectra.py [MODEL.gguf] [OUT.json]
"""
import hashlib
import json
import os
import sys
import time

import numpy as np
import gguf
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "Tests", "Golden", "kv", "smollm2_weight_spectra.json")
LEVELS = (0.9, 0.95, 0.99)


def energy_rank(sigma64, p):
    """Smallest r with sum_{i<=r} sigma_i^2 >= p * sum sigma_i^2."""
    energy = np.cumsum(sigma64 ** 2)
    total = energy[-1]
    if total <= 0:
        return 0
    return int(np.searchsorted(energy, p * total, side="left") + 1)


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else MODEL
    out = sys.argv[2] if len(sys.argv) > 2 else OUT
    reader = gguf.GGUFReader(model)
    tensors = {t.name: t for t in reader.tensors}
    n_layers = int(reader.fields["llama.block_count"].parts[-1][0])

    weights = []
    for layer in range(n_layers):
        pair = {}
        for kind, role in (("k", "attn_k"), ("v", "attn_v")):
            t = tensors[f"blk.{layer}.{role}.weight"]
            w = dequantize(t.data, t.tensor_type).astype(np.float32)
            w = w.reshape(int(t.shape[1]), int(t.shape[0]))  # (out, in)
            pair[kind] = (t.name, t.tensor_type.name, w)
        weights.append(pair)

    # Timing: numpy float32 SVD (values only) of the 60 matrices, as kvscope computes them; best of 3.
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for pair in weights:
            for kind in ("k", "v"):
                np.linalg.svd(pair[kind][2], compute_uv=False)
        runs.append(time.perf_counter() - start)
    elapsed = min(runs)
    print(f"numpy float32 SVD (values only) of {2 * n_layers} matrices: best {elapsed:.3f} s of "
          f"{', '.join(f'{r:.3f}' for r in runs)} (numpy {np.__version__}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})", file=sys.stderr)

    layers = []
    for layer, pair in enumerate(weights):
        entry = {"layer": layer}
        for kind in ("k", "v"):
            name, dtype, w = pair[kind]
            sigma = np.linalg.svd(w.astype(np.float64), compute_uv=False)
            entry[kind] = {
                "tensor": name,
                "dtype": dtype,
                "rows": int(w.shape[0]),
                "cols": int(w.shape[1]),
                "frobenius_norm": float(np.linalg.norm(w.astype(np.float64))),
                "singular_values": [float(f"{s:.8g}") for s in sigma.astype(np.float32)],
                "energy_rank": {str(p): energy_rank(sigma, p) for p in LEVELS},
            }
        layers.append(entry)

    sha = hashlib.sha256()
    with open(model, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    doc = {
        "source": "weights",
        "model": os.path.basename(model),
        "model_sha256": sha.hexdigest(),
        "generator": "Tests/Reference/kv_weight_spectra.py (gguf-py %s, numpy %s)" % (
            getattr(gguf, "__version__", "?"), np.__version__),
        "layers": layers,
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    ks = [l["k"]["energy_rank"]["0.95"] for l in layers]
    vs = [l["v"]["energy_rank"]["0.95"] for l in layers]
    print(f"median 95% energy rank: K {np.median(ks)}, V {np.median(vs)}", file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
