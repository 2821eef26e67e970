#!/usr/bin/env python3
"""Independent numpy float64 reference of `kvscope eval` under every kind of KV policy, for
Tests/KVScopeCLITests/EvalGridCLITests.swift.

The definition is DESIGN.md §4 ("Bi-branch cache", "Uniform quantization", "Perplexity"), written
again here in float64 and with K and V compressed independently:
  - per layer and per branch (K or V) an optional rank r and bits b (16 = no quantization);
  - with a rank, c = U_rᵀ k per token (U_r: the top-r eigenvectors of the uncentered pre-RoPE KᵀK
    of the calibration text, HF channel order, canonical signs), quantized per token in groups of
    g along the r features, k̂ = U_r ĉ; without one, k itself is quantized along its d_kv channels;
  - a query at t reads exact K/V for s > t − w and K̂/V̂ for s ≤ t − w; RoPE (rotate-half on the
    un-permuted HF weights) is applied to K̂ at the token's own position;
  - PPL = exp(mean over t of −log p(token_{t+1} | tokens ≤ t)).
SmolLM2 is read with gguf-py and tokenized with `tokenizers` (tokenizer_golden.py); only the weight
loading and tokenizer are shared with llama_reference.py, the float64 forward pass is this file's.

Writes Tests/Golden/inference/smollm2_kv_grid.json. Run from the repository root:
    .venv/bin/python Tests/Reference/kv_grid_reference.py
"""
import itertools
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from llama_reference import MODEL, canonical_signs, load_smollm2  # noqa: E402
from tokenizer_golden import build_tokenizer, load as load_vocab  # noqa: E402

OUT = "Tests/Golden/inference/smollm2_kv_grid.json"
CALIB = "Samples/eval.txt"          # --calib for every case
LONG_TEXT = "Samples/eval.txt"      # the acceptance cases (355 tokens)
GRID_TEXT = "Tests/Golden/inference/kv_grid_text.txt"  # the grid (about 100 tokens)
GRID_GROUP = 32
f64 = np.float64


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, n_heads, head_dim, cos, sin):
    t = x.shape[0]
    x = x.reshape(t, n_heads, head_dim)
    a, b = x[..., : head_dim // 2], x[..., head_dim // 2:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([a * c - b * s, b * c + a * s], axis=-1).reshape(t, n_heads * head_dim)


def fake_quantize(x, bits, group):
    """DESIGN.md §4 asymmetric quantizer per row, groups of `group` along the last axis (the last
    group shorter), round half to even; a constant group reconstructs exactly."""
    out = np.empty_like(x)
    qmax = 2.0 ** bits - 1
    for start in range(0, x.shape[1], group):
        g = x[:, start:start + group]
        lo, hi = g.min(axis=1, keepdims=True), g.max(axis=1, keepdims=True)
        scale = (hi - lo) / qmax
        safe = np.where(scale == 0, 1.0, scale)
        q = np.clip(np.rint((g - lo) / safe), 0, qmax)
        out[:, start:start + group] = np.where(scale == 0, lo, q * scale + lo)
    return out


def compress(x, rank, bits, group, basis):
    """One branch of one layer: x [T, d_kv] -> x̂, or x itself when the branch is exact."""
    if rank is not None and rank < x.shape[1]:
        u = basis[:, :rank]
        c = x @ u
        if bits < 16:
            c = fake_quantize(c, bits, group or rank)
        return c @ u.T
    if bits < 16:
        return fake_quantize(x, bits, group or x.shape[1])
    return x


def forward(model, tokens, case=None, bases=None, observe=None, start=None):
    """Logits [T, vocab] in float64. case: {k_rank, k_bits, v_rank, v_bits, window, group, layers}
    or None; `layers` (None: all) lists the layers the policy applies to, the others stay exact.
    start = (layer, x): begin at that layer with its input x (the layers before it are exact)."""
    cfg = model["config"]
    nh, nkv, hd, eps = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"], cfg["rms_eps"]
    T = len(tokens)
    inv = 1.0 / (cfg["rope_theta"] ** (np.arange(0, hd, 2, dtype=f64) / hd))
    ang = np.arange(T, dtype=f64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    first, x = start if start else (0, model["embed"][np.asarray(tokens)])
    causal = np.tril(np.ones((T, T), dtype=bool))
    w = case["window"] if case else 0
    old = np.tril(np.ones((T, T), dtype=bool), k=-w)  # s <= t - w
    scale = 1.0 / np.sqrt(hd)
    for li, L in enumerate(model["layers"]):
        if li < first:
            continue
        h = rms_norm(x, L["attn_norm"], eps)
        q, k, v = h @ L["wq"].T, h @ L["wk"].T, h @ L["wv"].T
        if observe:
            observe(li, k, v, x)
        if case and (case.get("layers") is None or li in case["layers"]):
            kc = compress(k, case["k_rank"], case["k_bits"], case["group"], bases[0][li] if bases else None)
            vc = compress(v, case["v_rank"], case["v_bits"], case["group"], bases[1][li] if bases else None)
        else:
            kc, vc = k, v
        q, kr, kcr = rope(q, nh, hd, cos, sin), rope(k, nkv, hd, cos, sin), rope(kc, nkv, hd, cos, sin)
        att = np.empty((T, nh * hd))
        for head in range(nh):
            g = head // (nh // nkv)
            sl, gl = slice(head * hd, (head + 1) * hd), slice(g * hd, (g + 1) * hd)
            s = np.where(old, q[:, sl] @ kcr[:, gl].T, q[:, sl] @ kr[:, gl].T) * scale
            s = np.where(causal, s, -np.inf)
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            att[:, sl] = np.where(old, 0, p) @ v[:, gl] + np.where(old, p, 0) @ vc[:, gl]
        x = x + att @ L["wo"].T
        h = rms_norm(x, L["ffn_norm"], eps)
        gate, up = h @ L["w_gate"].T, h @ L["w_up"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ L["w_down"].T
    return rms_norm(x, model["output_norm"], eps) @ model["output"].T


def mean_nll(logits, tokens):
    m = logits.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(lse[:-1] - logits[np.arange(len(tokens) - 1), np.asarray(tokens[1:])]))


def activation_bases(model, tokens):
    grams = {}

    def observe(li, k, v, x):
        grams[li] = (k.T @ k, v.T @ v)

    forward(model, tokens, observe=observe)
    kb, vb = [], []
    for li in range(len(model["layers"])):
        for gram, dst in zip(grams[li], (kb, vb)):
            _, u = np.linalg.eigh(gram)
            dst.append(canonical_signs(u[:, ::-1]))
    return kb, vb


def to_f64(model):
    out = {"config": model["config"], "embed": model["embed"].astype(f64),
           "output_norm": model["output_norm"].astype(f64), "output": model["output"].astype(f64), "layers": []}
    for L in model["layers"]:
        out["layers"].append({k: a.astype(f64) for k, a in L.items()})
    return out


def grid_cases(dkv, n_layers):
    """K choice × V choice, each (rank, bits) with rank ∈ {1, 16, d_kv} and bits ∈ {2, 4, 16}:
    all 81 pairs at window 32, and at window 0 the 27 pairs of a Latin-square design in which every
    K choice meets three V choices and every (K rank, V rank) and (K bits, V bits) pair occurs.
    Each point compresses one layer (point i: layer 7·i mod n_layers, so every layer is visited):
    with the quantizer in every layer the run is chaotic (see docs/definitions.md), with one layer
    it is a smooth function of exact inputs and fp32 and float64 agree to about 1e-5 in ΔNLL."""
    choices = list(itertools.product((1, 16, dkv), (2, 4, 16)))
    cases = []
    for (kr, kb), (vr, vb) in itertools.product(choices, choices):
        cases.append((32, kr, kb, vr, vb))
    for i, (kr, kb) in enumerate(choices):
        for j in range(3):
            vr_i, vb_i = (i // 3 + j) % 3, (i % 3 + 2 * j) % 3
            cases.append((0, kr, kb, (1, 16, dkv)[vr_i], (2, 4, 16)[vb_i]))
    out = []
    for i, (w, kr, kb, vr, vb) in enumerate(cases):
        out.append({"window": w, "k_rank": kr, "k_bits": kb, "v_rank": vr, "v_bits": vb, "group": GRID_GROUP,
                    "layers": [(7 * i) % n_layers]})
    return out


def main():
    tokens_v, merges, _, _ = load_vocab()
    tok = build_tokenizer(tokens_v, merges)

    def ids(path):
        return tok.encode(open(path, "rb").read().decode("utf-8"), add_special_tokens=False).ids

    model = to_f64(load_smollm2())
    dkv = model["config"]["n_kv_heads"] * model["config"]["head_dim"]
    bases = activation_bases(model, ids(CALIB))

    def section(path, cases):
        tokens = ids(path)
        inputs = {}
        base = mean_nll(forward(model, tokens, observe=lambda li, k, v, x: inputs.setdefault(li, x)), tokens)
        rows = []
        for n, case in enumerate(cases):
            layers = case.get("layers")
            start = (min(layers), inputs[min(layers)]) if layers else None  # exact up to the first compressed layer
            m = mean_nll(forward(model, tokens, case, bases, start=start), tokens)
            rows.append(dict(case, mean_nll=m, delta_nll=m - base, perplexity=float(np.exp(m))))
            print(f"  {path} {n + 1}/{len(cases)} {case}: dNLL {m - base:+.6f}", file=sys.stderr)
        return {"text": path, "n_tokens": len(tokens), "baseline_mean_nll": base,
                "baseline_perplexity": float(np.exp(base)), "cases": rows}

    def one(k_rank=None, k_bits=16, v_rank=None, v_bits=16, window=0, group=None, layers=None, **name):
        return {"window": window, "k_rank": k_rank, "k_bits": k_bits, "v_rank": v_rank, "v_bits": v_bits,
                "group": group, "layers": layers, **name}

    acceptance = [
        one(k_rank=64, window=32, name="k_rank64_window32"),
        one(v_rank=64, window=32, name="v_rank64_window32"),
        one(k_rank=16, window=32, name="k_rank16_window32"),
        one(k_rank=64, v_rank=64, window=32, name="rank64_window32"),
        one(k_bits=4, v_bits=4, window=32, group=64, name="bits4_group64_window32"),
        one(k_rank=64, v_rank=64, k_bits=4, v_bits=4, window=32, group=32, name="rank64_bits4_group32_window32"),
        one(k_bits=2, window=0, group=32, name="k_bits2_group32_window0"),
        one(v_bits=2, window=0, group=32, name="v_bits2_group32_window0"),
        one(k_bits=4, v_bits=4, window=32, group=64, layers=[3], name="bits4_group64_window32_layer3"),
        one(k_bits=2, window=0, group=32, layers=[0], name="k_bits2_group32_window0_layer0"),
        one(v_bits=2, window=0, group=32, layers=[20], name="v_bits2_group32_window0_layer20"),
        one(k_rank=16, v_rank=64, k_bits=4, v_bits=2, window=32, group=32, layers=[8, 9, 10],
            name="k16b4_v64b2_group32_window32_layers8to10"),
    ]
    doc = {"generator": "Tests/Reference/kv_grid_reference.py", "model": MODEL, "calibration": CALIB,
           "precision": "float64", "basis": "activations",
           "long": section(LONG_TEXT, acceptance),
           "grid": section(GRID_TEXT, grid_cases(dkv, len(model["layers"])))}
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
