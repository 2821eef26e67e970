#!/usr/bin/env python3
"""Config files for kvscope's config-reader tests and the FuzzConfig seed corpus: two small valid
configs (JSON and YAML) and hostile ones. The expected error words live in
Tests/ConfigurationTests/ConfigCorpusTests.swift.

Run from the repository root:  python3 Tests/Reference/config_corpus.py
"""
import copy
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from corpus_files import write_cases  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Corpus", "config")
SHA = "0" * 64


def kv_memory(n_layers, d_kv, window, group, context, layers):
    """DESIGN.md §4 bi-branch memory (basis `weights`: window tokens hold no features)."""
    def token_bytes(r, b):
        groups = 0 if b == 16 else math.ceil(r / group)
        return r * b / 8 + groups * 4
    baseline = n_layers * 2 * context * d_kv * 2
    compressed = 0.0
    bits = 0
    for l in layers:
        for br in ("k", "v"):
            r, b = l[br]["rank"], l[br]["bits"]
            compressed += min(context, window) * d_kv * 2 + max(context - window, 0) * token_bytes(r, b)
            bits += r * b
    return {"baseline_bytes": float(baseline), "compressed_bytes": compressed,
            "ratio": 1 - compressed / baseline, "nominal_ratio": 1 - bits / (len(layers) * 2 * d_kv * 16)}


def valid():
    layers = [{"layer": 0, "k": {"rank": 24, "bits": 8}, "v": {"rank": 16, "bits": 4}},
              {"layer": 1, "k": {"rank": 96, "bits": 4}, "v": {"rank": 192, "bits": 16}}]
    return {
        "format": "kvscope-config", "version": 1,
        "model": {"path": "model.gguf", "architecture": "llama", "n_layers": 2, "hidden_size": 576,
                  "d_kv": 192, "sha256": SHA},
        "kv_cache": {"basis": "weights", "window": 32, "group_size": 32, "context_length": 4096,
                     "layers": layers, "memory": kv_memory(2, 192, 32, 32, 4096, layers)},
        "weights": {"group_size": 128,
                    "layers": [{"tensor": "blk.0.attn_k.weight", "bits": 3, "outlier_fraction": 0.01},
                               {"tensor": "blk.1.ffn_down.weight", "bits": 2, "outlier_fraction": 0.0}],
                    "memory": {"baseline_bytes": 1.0, "compressed_bytes": 1.0, "bits_per_weight": 1.0, "ratio": 0.0}},
        "metrics": {"note": "seed"},
    }


def yaml_text(doc, indent=0):
    """Block YAML with double-quoted strings (enough for these documents)."""
    pad = "  " * indent
    out = []
    for k, v in doc.items():
        if isinstance(v, dict):
            out.append(f"{pad}{k}:")
            out.append(yaml_text(v, indent + 1))
        elif isinstance(v, list):
            out.append(f"{pad}{k}:")
            for item in v:
                out.append(f"{pad}- " + json.dumps(item))
        else:
            out.append(f"{pad}{k}: {json.dumps(v)}")
    return "\n".join(out)


def edit(path, value):
    doc = valid()
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def js(doc):
    return json.dumps(doc, indent=1).encode()


CASES = {
    "valid.json": js(valid()),
    "valid.yaml": (yaml_text(valid()) + "\n").encode(),
    # Hostile sizes: must be rejected without allocating or looping over them.
    "n_layers_2_62.json": js(edit(["model", "n_layers"], 1 << 62)),
    "n_layers_int_max.yaml": (yaml_text(edit(["model", "n_layers"], (1 << 63) - 1)) + "\n").encode(),
    "group_size_int_max.json": js(edit(["kv_cache", "group_size"], (1 << 63) - 1)),
    "context_int_max.json": js(edit(["kv_cache", "context_length"], (1 << 63) - 1)),
    "window_int_max.json": js(edit(["kv_cache", "window"], (1 << 63) - 1)),
    "layer_index_int_max.json": js(edit(["kv_cache", "layers", 0, "layer"], (1 << 63) - 1)),
    "int_beyond_int64.json": js(valid()).replace(b'"n_layers": 2', b'"n_layers": 92233720368547758070'),
    "int_beyond_int64.yaml": (yaml_text(valid()) + "\n").encode().replace(b"n_layers: 2", b"n_layers: 92233720368547758070"),
    "number_1e400.json": js(valid()).replace(b'"ratio": 0.0', b'"ratio": 1e400'),
    "yaml_inf_metric.yaml": (yaml_text(valid()) + "\n").encode().replace(b'note: "seed"', b"note: .inf"),
    "yaml_nan_memory.yaml": (yaml_text(valid()) + "\n").encode().replace(b"ratio: 0.0", b"ratio: .nan"),
    # Hostile structure.
    "deep_nesting.json": b"[" * 10_000 + b"]" * 10_000,
    "deep_nesting.yaml": b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 200)),
    "yaml_alias_bomb.yaml": b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n".encode() for i in range(9)),
    "long_string.json": js(edit(["model", "path"], "x" * 100_000)),
    "duplicate_key.json": b'{"format": "kvscope-config", "format": "kvscope-config"}',
    "not_utf8.json": b'{"format": "kvscope-\xff\xfe"}',
    "not_utf8.yaml": b'format: "kvscope-\xff\xfe"\n',
    "truncated.json": js(valid())[:200],
    "truncated.yaml": (yaml_text(valid()) + "\n").encode()[:200],
    "empty.json": b"",
    "empty.yaml": b"",
    "bad_escape.json": b'{"format": "\\ud800"}',
}
big = valid()
big["model"]["d_kv"] = 1 << 62
big["kv_cache"]["layers"][0]["k"]["rank"] = 1 << 62
CASES["d_kv_2_62_rank_2_62.json"] = js(big)

if __name__ == "__main__":
    write_cases(OUT, CASES)
