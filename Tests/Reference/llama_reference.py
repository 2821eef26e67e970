#!/usr/bin/env python3
"""Independent numpy float32 forward pass of a llama model, for the Swift Inference tests.

SmolLM2 is read from the GGUF with gguf-py (GGUFReader + gguf.quants.dequantize). Q/K rows, which
llama GGUF files store permuted for adjacent-pair RoPE, are un-permuted to the HF channel order and
RoPE is applied rotate-half: this path never uses the adjacent-pair rotation that the Swift code
runs on GGUF weights, so the two are independent. Text is tokenized with the `tokenizers` build of
tokenizer_golden.py (no BOS: add_bos_token is false).

KV-cache policies follow DESIGN.md §4 ("Bi-branch cache"): a query at t reads exact K/V for
s > t - w and the compressed reconstruction K̂/V̂ for s <= t - w. K̂ = Q_b(K U_r) U_rᵀ with U_r the
top-r eigenvectors of the uncentered pre-RoPE KᵀK of the calibration text (HF channel order, per
layer; V likewise); Q_b is the asymmetric per-token group quantizer (round half to even). RoPE is
applied to K̂ at the token's position.

Writes Tests/Golden/inference/smollm2_reference.json and the tiny random llama under
Tests/Golden/inference/tiny/. Run from the repository root:
    python3 Tests/Reference/llama_reference.py [--dump-weights DIR]
    python3 Tests/Reference/llama_reference.py --bench [--text Samples/eval.txt] [--repeat 3]   # JSON on stdout
--dump-weights writes SmolLM2's dequantized tensors (GGUF order, float32 LE) with a manifest, so the
Swift forward pass can be checked before the GGUF reader exists (not committed).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

MODEL = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = "Tests/Golden/inference"
f32 = np.float32


# ---------------------------------------------------------------- model math

def rms_norm(x, w, eps):
    ms = np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True)
    return (x / np.sqrt(ms + eps)).astype(f32) * w


def rope_tables(n, head_dim, theta):
    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    ang = np.arange(n, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang).astype(f32), np.sin(ang).astype(f32)


def rope(x, n_heads, head_dim, cos, sin, pairing):
    """x: [T, n_heads*head_dim] in HF channel order. pairing 'half' (correct) or 'adjacent' (wrong for HF order)."""
    t = x.shape[0]
    x = x.reshape(t, n_heads, head_dim)
    c, s = cos[:, None, :], sin[:, None, :]
    if pairing == "half":
        a, b = x[..., : head_dim // 2], x[..., head_dim // 2:]
        out = np.concatenate([a * c - b * s, b * c + a * s], axis=-1)
    else:
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = b * c + a * s
    return out.reshape(t, n_heads * head_dim).astype(f32)


def unpermute(w, n_heads):
    """GGUF Q/K rows (adjacent pairs per head) back to HF order (rotate-half)."""
    rows = w.shape[0]
    hd = rows // n_heads
    return w.reshape(n_heads, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def fake_quantize(x, bits, group):
    """DESIGN.md §4 asymmetric uniform quantizer, per row, groups of `group` along the last axis, in float32."""
    x = np.ascontiguousarray(x, dtype=f32)
    out = np.empty_like(x)
    qmax = f32(2 ** bits - 1)
    n = x.shape[1]
    for start in range(0, n, group):
        g = x[:, start:start + group]
        lo = g.min(axis=1, keepdims=True)
        hi = g.max(axis=1, keepdims=True)
        scale = ((hi - lo) / qmax).astype(f32)
        safe = np.where(scale == 0, f32(1), scale)
        q = np.clip(np.rint((g - lo) / safe), 0, qmax).astype(f32)
        rec = (q * scale + lo).astype(f32)
        out[:, start:start + group] = np.where(scale == 0, lo, rec)
    return out


class Policy:
    """Bi-branch KV policy: window w, optional per-layer bases (HF order, [d_kv, r]), optional quantizer."""

    def __init__(self, window=0, k_bases=None, v_bases=None, bits=16, group=None):
        self.window, self.k_bases, self.v_bases, self.bits, self.group = window, k_bases, v_bases, bits, group

    @property
    def exact(self):
        return self.k_bases is None and self.bits >= 16

    def compress(self, x, basis):
        if basis is not None:
            c = (x @ basis).astype(f32)
            if self.bits < 16:
                c = fake_quantize(c, self.bits, self.group or c.shape[1])
            return (c @ basis.T).astype(f32)
        if self.bits < 16:
            return fake_quantize(x, self.bits, self.group or x.shape[1])
        return x


def forward(model, tokens, policy=None, pairing="half", observe=None):
    """Logits [T, vocab] (float32). `model` is a dict in HF order (Q/K un-permuted)."""
    cfg = model["config"]
    nh, nkv, hd, eps = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"], cfg["rms_eps"]
    T = len(tokens)
    cos, sin = rope_tables(T, hd, cfg["rope_theta"])
    x = model["embed"][np.asarray(tokens)].astype(f32)
    causal = np.tril(np.ones((T, T), dtype=bool))
    w = policy.window if policy else 0
    # old[t, s]: s <= t - w (compressed branch), within the causal mask.
    old = np.tril(np.ones((T, T), dtype=bool), k=-w) if policy and not policy.exact else np.zeros((T, T), bool)
    scale = f32(1.0 / np.sqrt(hd))
    for li, L in enumerate(model["layers"]):
        h = rms_norm(x, L["attn_norm"], eps)
        q = (h @ L["wq"].T).astype(f32)
        k = (h @ L["wk"].T).astype(f32)
        v = (h @ L["wv"].T).astype(f32)
        if observe:
            observe(li, k, v)
        if policy and not policy.exact:
            kb = policy.k_bases[li] if policy.k_bases else None
            vb = policy.v_bases[li] if policy.v_bases else None
            kc, vc = policy.compress(k, kb), policy.compress(v, vb)
        else:
            kc, vc = k, v
        q = rope(q, nh, hd, cos, sin, pairing)
        kr = rope(k, nkv, hd, cos, sin, pairing)
        kcr = rope(kc, nkv, hd, cos, sin, pairing)
        att = np.empty((T, nh * hd), dtype=f32)
        for head in range(nh):
            g = head // (nh // nkv)
            qs = q[:, head * hd:(head + 1) * hd]
            ks, kcs = kr[:, g * hd:(g + 1) * hd], kcr[:, g * hd:(g + 1) * hd]
            vs, vcs = v[:, g * hd:(g + 1) * hd], vc[:, g * hd:(g + 1) * hd]
            s = np.where(old, qs @ kcs.T, qs @ ks.T) * scale
            s = np.where(causal, s, -np.inf).astype(f32)
            s = s - s.max(axis=1, keepdims=True)
            p = np.exp(s)
            p = (p / p.sum(axis=1, keepdims=True)).astype(f32)
            att[:, head * hd:(head + 1) * hd] = np.where(old, 0, p) @ vs + np.where(old, p, 0) @ vcs
        x = (x + att @ L["wo"].T).astype(f32)
        h = rms_norm(x, L["ffn_norm"], eps)
        gate = (h @ L["w_gate"].T).astype(f32)
        up = (h @ L["w_up"].T).astype(f32)
        act = (gate / (1 + np.exp(-gate.astype(np.float64)))).astype(f32) * up
        x = (x + act @ L["w_down"].T).astype(f32)
    x = rms_norm(x, model["output_norm"], eps)
    return (x @ model["output"].T).astype(f32)


def nll_stats(logits, tokens):
    lg = logits.astype(np.float64)
    m = lg.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(lg - m).sum(axis=1, keepdims=True)))[:, 0]
    nll = lse[:-1] - lg[np.arange(len(tokens) - 1), np.asarray(tokens[1:])]
    mean = float(nll.mean())
    return mean, float(np.exp(mean)), lse


def canonical_signs(u):
    """Flips each column so that its entry of largest magnitude is positive (eigenvector signs are
    arbitrary, and a quantized feature branch depends on them)."""
    idx = np.argmax(np.abs(u), axis=0)
    signs = np.sign(u[idx, np.arange(u.shape[1])])
    signs[signs == 0] = 1
    return u * signs


def activation_bases(model, tokens, pairing="half"):
    """Per layer eigenvectors of the uncentered pre-RoPE KᵀK and VᵀV (HF order), descending,
    signs made canonical (largest-magnitude entry positive)."""
    grams = {}

    def observe(li, k, v):
        k64, v64 = k.astype(np.float64), v.astype(np.float64)
        grams[li] = (k64.T @ k64, v64.T @ v64)

    forward(model, tokens, None, pairing, observe)
    kb, vb = [], []
    for li in range(len(model["layers"])):
        for gram, dst in zip(grams[li], (kb, vb)):
            w, u = np.linalg.eigh(gram)
            dst.append(canonical_signs(u[:, ::-1]).astype(f32))
    return kb, vb


# ---------------------------------------------------------------- SmolLM2

def load_smollm2(dump_dir=None):
    from gguf import GGUFReader
    from gguf.quants import dequantize
    r = GGUFReader(MODEL)

    def meta(k):
        return r.fields[k].contents()

    cfg = {"n_layers": int(meta("llama.block_count")), "hidden_size": int(meta("llama.embedding_length")),
           "n_heads": int(meta("llama.attention.head_count")), "n_kv_heads": int(meta("llama.attention.head_count_kv")),
           "ffn_size": int(meta("llama.feed_forward_length")), "vocab_size": int(meta("llama.vocab_size")),
           "rms_eps": float(meta("llama.attention.layer_norm_rms_epsilon")),
           "rope_theta": float(meta("llama.rope.freq_base"))}
    cfg["head_dim"] = cfg["hidden_size"] // cfg["n_heads"]
    raw = {t.name: dequantize(t.data, t.tensor_type).astype(f32) for t in r.tensors}
    if dump_dir:
        os.makedirs(dump_dir, exist_ok=True)
        tensors = {}
        for name, a in raw.items():
            fn = name + ".f32"
            np.ascontiguousarray(a, dtype="<f4").tofile(os.path.join(dump_dir, fn))
            tensors[name] = {"file": fn, "shape": list(a.shape)}
        with open(os.path.join(dump_dir, "manifest.json"), "w") as f:
            json.dump({"config": dict(cfg, rope_style="adjacent"), "tensors": tensors}, f, indent=1)
    layers = []
    for i in range(cfg["n_layers"]):
        p = f"blk.{i}."
        layers.append({
            "attn_norm": raw[p + "attn_norm.weight"], "ffn_norm": raw[p + "ffn_norm.weight"],
            "wq": unpermute(raw[p + "attn_q.weight"], cfg["n_heads"]),
            "wk": unpermute(raw[p + "attn_k.weight"], cfg["n_kv_heads"]),
            "wv": raw[p + "attn_v.weight"], "wo": raw[p + "attn_output.weight"],
            "w_gate": raw[p + "ffn_gate.weight"], "w_up": raw[p + "ffn_up.weight"], "w_down": raw[p + "ffn_down.weight"],
        })
    emb = raw["token_embd.weight"]
    return {"config": cfg, "embed": emb, "layers": layers, "output_norm": raw["output_norm.weight"],
            "output": raw.get("output.weight", emb)}


def smollm2(dump_dir):
    from tokenizer_golden import build_tokenizer, load as load_vocab
    tokens_v, merges, _, _ = load_vocab()
    tok = build_tokenizer(tokens_v, merges)
    text = open("Samples/eval.txt", "rb").read().decode("utf-8")
    ids = tok.encode(text, add_special_tokens=False).ids
    model = load_smollm2(dump_dir)
    print(f"SmolLM2: {len(ids)} tokens of Samples/eval.txt", file=sys.stderr)

    t0 = time.perf_counter()
    logits = forward(model, ids)
    dt = time.perf_counter() - t0
    mean, ppl, lse = nll_stats(logits, ids)
    print(f"numpy prefill: {len(ids) / dt:.1f} tokens/s ({dt:.2f} s); baseline PPL {ppl:.4f}", file=sys.stderr)
    positions = []
    cols = list(range(0, logits.shape[1], 768))
    for t in range(8):
        positions.append({"position": t, "columns_start": 0, "columns_step": 768,
                          "logits": [float(v) for v in logits[t, cols]],
                          "argmax": int(np.argmax(logits[t])), "logsumexp": float(lse[t])})

    kb, vb = activation_bases(model, ids)  # --calib Samples/eval.txt: the same text
    cases = {}

    def run(name, policy, pairing="half", description=""):
        lg = forward(model, ids, policy, pairing)
        m, p, _ = nll_stats(lg, ids)
        cases[name] = {"mean_nll": m, "perplexity": p, "description": description}
        print(f"  {name}: PPL {p:.4f}", file=sys.stderr)

    cases["baseline"] = {"mean_nll": mean, "perplexity": ppl, "description": "exact cache"}
    run("rank64_window32", Policy(32, [b[:, :64] for b in kb], [b[:, :64] for b in vb]),
        description="--rank 64 --window 32 --calib Samples/eval.txt (activations basis)")
    run("bits4_group64_window32", Policy(32, None, None, 4, 64),
        description="--bits 4 --group 64 --window 32 (no low rank)")
    run("rank64_bits4_group32_window32", Policy(32, [b[:, :64] for b in kb], [b[:, :64] for b in vb], 4, 32),
        description="--rank 64 --bits 4 --group 32 --window 32 --calib Samples/eval.txt")
    run("wrong_rope_pairing", None, "adjacent", description="baseline with adjacent-pair RoPE on HF-order Q/K")

    out = {"generator": "Tests/Reference/llama_reference.py", "model": MODEL, "text": "Samples/eval.txt",
           "n_tokens": len(ids), "n_predictions": len(ids) - 1, "token_ids": ids,
           "first_positions": positions, "cases": cases,
           "numpy_prefill_tokens_per_second": len(ids) / dt}
    with open(os.path.join(OUT, "smollm2_reference.json"), "w") as f:
        json.dump(out, f, indent=1)


# ---------------------------------------------------------------- tiny random llama

def tiny():
    rng = np.random.default_rng(20261130)
    cfg = {"n_layers": 2, "hidden_size": 32, "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "ffn_size": 64,
           "vocab_size": 50, "rms_eps": 1e-5, "rope_theta": 10000.0}
    d, dkv, dq, ffn, V = 32, 16, 32, 64, 50

    def mat(o, i):
        return (rng.standard_normal((o, i)) / np.sqrt(i)).astype(f32)

    stored = {"token_embd.weight": rng.standard_normal((V, d)).astype(f32),
              "output_norm.weight": (1 + 0.1 * rng.standard_normal(d)).astype(f32),
              "output.weight": mat(V, d)}
    for i in range(cfg["n_layers"]):
        p = f"blk.{i}."
        stored[p + "attn_norm.weight"] = (1 + 0.1 * rng.standard_normal(d)).astype(f32)
        stored[p + "ffn_norm.weight"] = (1 + 0.1 * rng.standard_normal(d)).astype(f32)
        stored[p + "attn_q.weight"] = (2 * mat(dq, d))
        stored[p + "attn_k.weight"] = (2 * mat(dkv, d))
        stored[p + "attn_v.weight"] = mat(dkv, d)
        stored[p + "attn_output.weight"] = mat(d, dq)
        stored[p + "ffn_gate.weight"] = mat(ffn, d)
        stored[p + "ffn_up.weight"] = mat(ffn, d)
        stored[p + "ffn_down.weight"] = mat(d, ffn)
    tokens = [int(t) for t in rng.integers(0, V, 12)]

    d_out = os.path.join(OUT, "tiny")
    os.makedirs(d_out, exist_ok=True)
    manifest_tensors = {}
    for name, a in stored.items():
        fn = name + ".f32"
        np.ascontiguousarray(a, dtype="<f4").tofile(os.path.join(d_out, fn))
        manifest_tensors[name] = {"file": fn, "shape": list(a.shape)}

    styles = {}
    for style in ("rotate_half", "adjacent"):
        # The same stored tensors read as HF (rotate-half) or as GGUF (adjacent pairs: un-permute Q/K).
        fix = (lambda w, n: w) if style == "rotate_half" else unpermute
        model = {"config": cfg, "embed": stored["token_embd.weight"], "output_norm": stored["output_norm.weight"],
                 "output": stored["output.weight"], "layers": []}
        for i in range(cfg["n_layers"]):
            p = f"blk.{i}."
            model["layers"].append({
                "attn_norm": stored[p + "attn_norm.weight"], "ffn_norm": stored[p + "ffn_norm.weight"],
                "wq": fix(stored[p + "attn_q.weight"], cfg["n_heads"]),
                "wk": fix(stored[p + "attn_k.weight"], cfg["n_kv_heads"]),
                "wv": stored[p + "attn_v.weight"], "wo": stored[p + "attn_output.weight"],
                "w_gate": stored[p + "ffn_gate.weight"], "w_up": stored[p + "ffn_up.weight"],
                "w_down": stored[p + "ffn_down.weight"]})
        kb, vb = activation_bases(model, tokens)
        r4k, r4v = [b[:, :4] for b in kb], [b[:, :4] for b in vb]
        policies = {
            "baseline": Policy(),
            "rank4_window3": Policy(3, r4k, r4v),
            "bits4_group4_window3": Policy(3, None, None, 4, 4),
            "rank4_bits4_group2_window3": Policy(3, r4k, r4v, 4, 2),
            "rank4_window0": Policy(0, r4k, r4v),
            "bits3_group5_window0": Policy(0, None, None, 3, 5),
        }
        cases = {}
        for name, pol in policies.items():
            lg = forward(model, tokens, pol)
            m, p, _ = nll_stats(lg, tokens)
            cases[name] = {"logits": [float(v) for v in lg.ravel()], "mean_nll": m, "perplexity": p}
        styles[style] = {"k_bases": [[float(v) for v in b.ravel()] for b in kb],
                         "v_bases": [[float(v) for v in b.ravel()] for b in vb], "cases": cases}

    with open(os.path.join(d_out, "manifest.json"), "w") as f:
        json.dump({"generator": "Tests/Reference/llama_reference.py", "config": cfg, "tensors": manifest_tensors,
                   "tokens": tokens,
                   "policies": {"rank4_window3": {"rank": 4, "window": 3, "bits": 16},
                                "bits4_group4_window3": {"window": 3, "bits": 4, "group": 4},
                                "rank4_bits4_group2_window3": {"rank": 4, "window": 3, "bits": 4, "group": 2},
                                "rank4_window0": {"rank": 4, "window": 0, "bits": 16},
                                "bits3_group5_window0": {"window": 0, "bits": 3, "group": 5},
                                "baseline": {"window": 0, "bits": 16}},
                   "styles": styles}, f)


def bench(text_path, repeat):
    """Prefill throughput of the numpy forward pass (logits of every position), median of `repeat`
    runs after one warm-up, printed as one JSON document on stdout (for `make bench`)."""
    from tokenizer_golden import build_tokenizer, load as load_vocab
    tokens_v, merges, _, _ = load_vocab()
    tok = build_tokenizer(tokens_v, merges)
    ids = tok.encode(open(text_path, "rb").read().decode("utf-8"), add_special_tokens=False).ids
    model = load_smollm2()
    forward(model, ids)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        logits = forward(model, ids)
        times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]
    _, ppl, _ = nll_stats(logits, ids)
    print(json.dumps({"n_tokens": len(ids), "times_s": times, "median_s": median,
                      "tokens_per_second": len(ids) / median, "perplexity": ppl,
                      "numpy": np.__version__}, sort_keys=True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump-weights", default=None)
    ap.add_argument("--tiny-only", action="store_true")
    ap.add_argument("--bench", action="store_true", help="time the SmolLM2 prefill of --text; print JSON only")
    ap.add_argument("--text", default="Samples/eval.txt")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if a.bench:
        bench(a.text, a.repeat)
        return
    tiny()
    if not a.tiny_only:
        smollm2(a.dump_weights)


if __name__ == "__main__":
    main()
