#!/usr/bin/env python3
"""Load the low-rank K/V factors that `kvscope export CFG --factors OUT.safetensors` writes, and check them.

    python3 Samples/load_factors.py OUT.safetensors [--model MODEL.gguf]

Needs numpy, safetensors and (for GGUF models) gguf-py. The file holds, for every layer N,

    model.layers.N.self_attn.k_proj.lora_A.weight   A_k [r_k, d]     c = A_k x   (what the cache stores)
    model.layers.N.self_attn.k_proj.lora_B.weight   B_k [d_kv, r_k]  k_hat = B_k c (then RoPE)
    ... and the same for v_proj,

in fp16 and in the Hugging Face row order (a llama GGUF's Q/K row permutation undone), with the
whole kvscope config JSON in the safetensors metadata under "kvscope_config". For every layer this
script checks, against the config and against W_k / W_v read from the model file:

  * shapes and ranks: A is [r, d] and B is [d_kv, r] with r the config's rank;
  * k_hat = B(Ax) is the projection of k = Wx onto B's columns: A = B^T W and B^T B = I
    (the projection bases: activations, weights, asvd);
  * ||W - BA||_F / ||W||_F equals the weight error the config reports (metrics.kv_layers).
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
from safetensors import safe_open


def load_projection(reader, name, n_kv_heads, permuted):
    """W [d_kv, d] in float32, HF row order."""
    from gguf import quants

    tensor = next((t for t in reader.tensors if t.name == name), None)
    if tensor is None:
        sys.exit(f"{name}: not in the model")
    w = np.asarray(quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
    d = int(tensor.shape[0])  # ggml order: ne[0] is the input width
    w = w.reshape(-1, d)
    if permuted:
        # llama.cpp stores row h*hd + 2i + j for HF row h*hd + j*hd/2 + i (adjacent-pair RoPE).
        rows = w.shape[0]
        hd = rows // n_kv_heads
        w = w.reshape(n_kv_heads, hd // 2, 2, d).swapaxes(1, 2).reshape(rows, d)
    return w


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("factors")
    parser.add_argument("--model", help="model file (default: the config's model.path)")
    args = parser.parse_args()

    with safe_open(args.factors, framework="np") as f:
        config = json.loads(f.metadata()["kvscope_config"])
        tensors = {name: f.get_tensor(name) for name in f.keys()}

    model = config["model"]
    kv = config["kv_cache"]
    model_path = args.model or model["path"]
    if not os.path.exists(model_path):
        sys.exit(f"{model_path}: model not found (pass --model)")
    h = hashlib.sha256()
    with open(model_path, "rb") as m:
        for chunk in iter(lambda: m.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != model["sha256"]:
        sys.exit(f"{model_path}: SHA-256 {h.hexdigest()} differs from the config's {model['sha256']}")
    if not model_path.endswith(".gguf"):
        sys.exit("this example reads GGUF models with gguf-py")

    from gguf import GGUFReader

    reader = GGUFReader(model_path)
    arch = model["architecture"]
    field = reader.fields[f"{arch}.attention.head_count_kv"]
    n_kv_heads = int(field.parts[field.data[0]][0])
    errors = {(e["layer"], kind): e[kind]["weight_error"]
              for e in config["metrics"].get("kv_layers", []) for kind in ("k", "v")}

    d, d_kv = model["hidden_size"], model["d_kv"]
    checked = 0
    worst = 0.0
    for entry in kv["layers"]:
        n = entry["layer"]
        for kind, gguf_name in (("k", "attn_k"), ("v", "attn_v")):
            r = entry[kind]["rank"]
            a = tensors[f"model.layers.{n}.self_attn.{kind}_proj.lora_A.weight"].astype(np.float64)
            b = tensors[f"model.layers.{n}.self_attn.{kind}_proj.lora_B.weight"].astype(np.float64)
            assert a.shape == (r, d), f"layer {n} {kind}: A is {a.shape}, expected {(r, d)}"
            assert b.shape == (d_kv, r), f"layer {n} {kind}: B is {b.shape}, expected {(d_kv, r)}"
            w = load_projection(reader, f"blk.{n}.{gguf_name}.weight", n_kv_heads,
                                permuted=(kind == "k" and arch == "llama")).astype(np.float64)
            assert w.shape == (d_kv, d), f"layer {n} {kind}: W is {w.shape}"

            # k_hat = B(Ax) for a few inputs equals the projection B B^T (W x).
            x = np.random.default_rng(n).standard_normal((d, 4))
            k_hat = b @ (a @ x)
            projected = b @ (b.T @ (w @ x))
            gap = np.linalg.norm(k_hat - projected) / max(np.linalg.norm(projected), 1e-12)
            orth = np.abs(b.T @ b - np.eye(r)).max()
            assert gap < 5e-3, f"layer {n} {kind}: B(Ax) differs from B B^T W x by {gap:.2e}"
            assert orth < 5e-3, f"layer {n} {kind}: B^T B differs from I by {orth:.2e}"

            e_w = np.linalg.norm(w - b @ a) / np.linalg.norm(w)
            if (n, kind) in errors:
                expected = errors[(n, kind)]
                assert abs(e_w - expected) <= 2e-3 + 0.01 * expected, \
                    f"layer {n} {kind}: ||W - BA||/||W|| = {e_w:.5f}, the config says {expected:.5f}"
                worst = max(worst, abs(e_w - expected))
            checked += 1
    print(f"{args.factors}: all {checked} factor pairs match the config "
          f"(ranks, shapes, k_hat = B(Ax), weight errors within {worst:.1e})")


if __name__ == "__main__":
    main()
