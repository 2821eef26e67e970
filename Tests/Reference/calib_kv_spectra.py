#!/usr/bin/env python3
"""numpy reference for `kvscope spectra --source kv|kv-post-rope` on SmolLM2 and Samples/calibration.txt.

Runs the independent float32 forward pass of llama_reference.py (gguf-py dequantization, HF channel
order, rotate-half RoPE), captures every layer's pre-RoPE K and V ([T, d_kv]) and the post-RoPE K,
and takes their singular values directly with a float64 SVD of the token matrix (no Gram route).
Energy rank r_p = smallest r with sum_{i<=r} s_i^2 >= p * sum s_i^2 (DESIGN.md §4).

Writes Tests/Golden/kv/smollm2_kv_spectra.json: singular values (top 32) of a few layers and the
energy ranks of every layer, for the three sources. Run from the repository root:
    python3 Tests/Reference/calib_kv_spectra.py
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import llama_reference as ref  # noqa: E402

TEXT = "Samples/calibration.txt"
OUT = "Tests/Golden/kv/smollm2_kv_spectra.json"
LAYERS = [0, 1, 15, 29]
TOP = 32
LEVELS = [0.9, 0.95, 0.99]


def energy_ranks(s):
    e = np.cumsum(s.astype(np.float64) ** 2)
    return {str(p): int(np.searchsorted(e, p * e[-1]) + 1) for p in LEVELS}


def main():
    from tokenizer_golden import build_tokenizer, load as load_vocab
    tokens_v, merges, _, _ = load_vocab()
    tok = build_tokenizer(tokens_v, merges)
    text = open(TEXT, "rb").read().decode("utf-8")
    ids = tok.encode(text, add_special_tokens=False).ids
    model = ref.load_smollm2()
    cfg = model["config"]
    cos, sin = ref.rope_tables(len(ids), cfg["head_dim"], cfg["rope_theta"])
    spectra = {"kv_k": {}, "kv_v": {}, "kv_post_rope_k": {}}

    def observe(li, k, v):
        kr = ref.rope(k, cfg["n_kv_heads"], cfg["head_dim"], cos, sin, "half")
        for name, m in (("kv_k", k), ("kv_v", v), ("kv_post_rope_k", kr)):
            spectra[name][li] = np.linalg.svd(m.astype(np.float64), compute_uv=False)

    ref.forward(model, ids, None, "half", observe)
    out = {"generator": "Tests/Reference/calib_kv_spectra.py", "model": ref.MODEL, "text": TEXT,
           "n_tokens": len(ids), "layers_with_values": LAYERS, "top": TOP, "sources": {}}
    for name, per_layer in spectra.items():
        out["sources"][name] = {
            "singular_values": {str(li): [float(x) for x in per_layer[li][:TOP]] for li in LAYERS},
            "energy_rank": [energy_ranks(per_layer[li]) for li in range(cfg["n_layers"])],
        }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
    print(f"{len(ids)} tokens; wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
