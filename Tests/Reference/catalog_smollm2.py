#!/usr/bin/env python3
"""SmolLM2's GGUF header as the official `gguf` reader (gguf-py) sees it, for ModelCatalogTests.

Writes Tests/Golden/catalog/smollm2.json: the `general.architecture` and `llama.*` metadata
(scalars, with their GGUF value type), the length of `tokenizer.ggml.tokens`, and every tensor's
name, shape in PyTorch order ([out, in]: gguf-py gives GGML order, innermost first, so it is
reversed), GGML type name and byte count. The Swift test feeds these to ModelCatalog (a pure
function), so the catalog is checked on the real model's header without a GGUF reader.

Run:  python3 Tests/Reference/catalog_smollm2.py
"""
import json
import os

from gguf import GGUFReader

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(os.path.dirname(TESTS), "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(TESTS, "Golden", "catalog", "smollm2.json")


def main():
    reader = GGUFReader(MODEL)
    metadata = {}
    for key, field in reader.fields.items():
        if key == "general.architecture" or key.startswith("llama."):
            value = field.contents()
            metadata[key] = {"type": field.types[0].name, "value": value}
    tensors = [
        {"name": t.name, "shape": [int(x) for x in reversed(t.shape)], "dtype": t.tensor_type.name, "bytes": int(t.n_bytes)}
        for t in reader.tensors
    ]
    doc = {
        "metadata": metadata,
        "tokenizer_tokens": len(reader.fields["tokenizer.ggml.tokens"].data),
        "tensors": tensors,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print(f"wrote {len(tensors)} tensors and {len(metadata)} metadata keys")


if __name__ == "__main__":
    main()
