#!/usr/bin/env python3
"""Token ids of the HF fixtures' tokenizer.json files, from the `tokenizers` library.

For each family, reads models/hf/NAME-f32/tokenizer.json (written by hf_fixtures.py through
gguf_tokenizer_json.py) with `tokenizers`, encodes the texts of Tests/Golden/inference/families/NAME.json
(its tokenizer cases and files) with add_special_tokens=True, and writes
Tests/Golden/inference/families/NAME_tokenizer_json.json: the ids, and whether they equal the
GGUF reference ids of the same text. FamilyTokenizerTests checks kvscope's tokenizer.json reader
against these ids.

Usage: .venv/bin/python Tests/Reference/tokenizer_json_golden.py [--tokenizer-dir DIR] [names...]
"""
import argparse
import hashlib
import json
import os

from tokenizers import Tokenizer
import tokenizers

GOLDEN = "Tests/Golden/inference/families"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer-dir", default=None, help="read DIR/NAME.json instead of models/hf/NAME-f32/tokenizer.json")
    ap.add_argument("names", nargs="*", default=["smollm2", "qwen2", "gemma3"])
    args = ap.parse_args()
    for name in args.names:
        path = os.path.join(args.tokenizer_dir, f"{name}.json") if args.tokenizer_dir else f"models/hf/{name}-f32/tokenizer.json"
        tok = Tokenizer.from_file(path)
        ref = json.load(open(os.path.join(GOLDEN, f"{name}.json")))["tokenizer"]
        cases = [(c["text"], c["text"], c["gguf"]) for c in ref["cases"]]
        cases += [(p, open(p, encoding="utf-8").read(), ref["files"][p]["gguf"]) for p in sorted(ref["files"])]
        out, differ = [], []
        for label, text, gguf_ids in cases:
            ids = tok.encode(text, add_special_tokens=True).ids
            out.append({"text": label, "is_file": label != text, "ids": ids, "equals_gguf": ids == gguf_ids})
            if ids != gguf_ids:
                differ.append(label[:40])
        doc = {"generator": "Tests/Reference/tokenizer_json_golden.py", "tokenizers": tokenizers.__version__,
               "tokenizer_json_sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
               "texts_differing_from_gguf": differ, "cases": out}
        with open(os.path.join(GOLDEN, f"{name}_tokenizer_json.json"), "w") as f:
            json.dump(doc, f, indent=0, ensure_ascii=False)
            f.write("\n")
        print(f"{name}: {len(out)} texts, {len(differ)} differ from the GGUF ids: {differ}")


if __name__ == "__main__":
    main()
