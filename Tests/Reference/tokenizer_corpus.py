#!/usr/bin/env python3
"""Seeds for FuzzTokenizer (Tests/Corpus/tokenizer): the first byte picks the source (0: a
tokenizer.json, 1 or 3: a GGUF whose tokenizer.ggml.* fields are read), the rest is the file.
Small valid tokenizers of each kind plus a few broken ones.

Usage: .venv/bin/python Tests/Reference/tokenizer_corpus.py
"""
import json
import os
import tempfile

import gguf

OUT = "Tests/Corpus/tokenizer"
BYTES = ["Ā" if b == 0 else chr(b) for b in range(33, 127)]


def write(name, kind, body):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([kind]) + body)


def gguf_bytes(fields):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.gguf")
        w = gguf.GGUFWriter(path, "llama")
        for key, (kind, value) in fields.items():
            getattr(w, f"add_{kind}")(key, value) if kind != "array" else w.add_array(key, value)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return open(path, "rb").read()


def main():
    os.makedirs(OUT, exist_ok=True)
    vocab = {t: i for i, t in enumerate(BYTES + ["Ġ", "he", "ll", "hell", "hello"])}
    bpe = {"model": {"type": "BPE", "vocab": vocab, "merges": ["h e", "l l", "he ll", "hell o"]},
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
           "added_tokens": [{"id": len(vocab), "content": "<s>", "special": True}]}
    write("bytelevel.json", 0, json.dumps(bpe).encode())
    spm_vocab = {"<unk>": 0, "<s>": 1, "▁": 2, "a": 3, "b": 4, "▁a": 5, "ab": 6}
    spm_vocab.update({f"<0x{b:02X}>": 7 + b for b in range(256)})
    spm = {"model": {"type": "BPE", "vocab": spm_vocab, "merges": [["▁", "a"], ["a", "b"]], "byte_fallback": True, "unk_token": "<unk>"},
           "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
           "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]},
           "added_tokens": [{"id": 1, "content": "<s>", "special": True}]}
    write("sentencepiece_bpe.json", 0, json.dumps(spm).encode())
    write("truncated.json", 0, json.dumps(bpe).encode()[:200])
    broken = dict(bpe, model=dict(bpe["model"], merges=["x y"]))
    write("merge_unknown.json", 0, json.dumps(broken).encode())
    write("unigram.json", 0, json.dumps({"model": {"type": "Unigram", "vocab": [["a", -1.0]]}}).encode())
    tokens = BYTES + ["he", "ll", "hell"]
    write("gguf_gpt2.gguf", 1, gguf_bytes({
        "tokenizer.ggml.model": ("string", "gpt2"), "tokenizer.ggml.pre": ("string", "qwen2"),
        "tokenizer.ggml.tokens": ("array", tokens), "tokenizer.ggml.merges": ("array", ["h e", "l l", "he ll"]),
        "tokenizer.ggml.token_type": ("array", [1] * len(tokens))}))
    pieces = ["<unk>", "<s>", "</s>", "▁", "a", "▁a", "\n\n"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3, 1, 1, 1, 4] + [6] * 256
    write("gguf_spm.gguf", 3, gguf_bytes({
        "tokenizer.ggml.model": ("string", "llama"), "tokenizer.ggml.tokens": ("array", pieces),
        "tokenizer.ggml.scores": ("array", [0.0, 0.0, 0.0, -1.0, -2.0, -0.5, -1000.0] + [0.0] * 256),
        "tokenizer.ggml.token_type": ("array", types), "tokenizer.ggml.bos_token_id": ("uint32", 1),
        "tokenizer.ggml.add_bos_token": ("bool", True), "tokenizer.ggml.add_space_prefix": ("bool", False)}))
    print(f"wrote {len(os.listdir(OUT))} seeds to {OUT}")


if __name__ == "__main__":
    main()
