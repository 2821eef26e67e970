#!/usr/bin/env python3
"""Golden token ids for the Swift byte-level BPE tokenizer, computed by the `tokenizers` package.

The vocabulary and merges are read from the SmolLM2 GGUF with gguf-py (GGUFReader), and a
`tokenizers.Tokenizer` is built from them with the pre-tokenizer llama.cpp calls "smollm":
digits split one by one, then the GPT-2 byte-level regex. Special tokens are not parsed (as
llama.cpp's perplexity tool does, parse_special=false), so none are registered.

Writes:
  Tests/Golden/tokenizer/smollm2.json        (committed) texts and their token ids
  Tests/Golden/tokenizer/smollm2_vocab.json  (git-ignored, ~1.5 MB) the tokenizer.ggml.* metadata
                                             it read, so Swift tests can build the tokenizer before
                                             the GGUF reader is available.
Run from the repository root:
    python3 Tests/Reference/tokenizer_golden.py
"""
import json
import os
import time

from gguf import GGUFReader
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

MODEL = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = "Tests/Golden/tokenizer"


def field(reader, key):
    return reader.fields[key].contents()


def build_tokenizer(tokens, merges):
    """A tokenizers.Tokenizer equivalent to llama.cpp's "smollm" BPE tokenizer (no specials)."""
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab, pairs))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def load():
    reader = GGUFReader(MODEL)
    tokens = field(reader, "tokenizer.ggml.tokens")
    merges = field(reader, "tokenizer.ggml.merges")
    types = field(reader, "tokenizer.ggml.token_type")
    meta = {
        "tokenizer.ggml.model": field(reader, "tokenizer.ggml.model"),
        "tokenizer.ggml.pre": field(reader, "tokenizer.ggml.pre"),
        "tokenizer.ggml.add_bos_token": field(reader, "tokenizer.ggml.add_bos_token"),
        "tokenizer.ggml.bos_token_id": field(reader, "tokenizer.ggml.bos_token_id"),
        "tokenizer.ggml.eos_token_id": field(reader, "tokenizer.ggml.eos_token_id"),
    }
    return tokens, merges, [int(t) for t in types], meta


SHORT = [
    ("ascii", "Hello, world! This is a test."),
    ("accents", "Café déjà vu: naïve façade, Ærøskøbing, São Paulo."),
    ("cjk", "日本語のテキストと中文文本。한국어도."),
    ("emoji", "Rockets 🚀🚀 and flags 🇫🇷, family 👨‍👩‍👧 ok"),
    ("digits", "12345 3.14159 and 2024-11-29, x86_64 v1.0"),
    ("spaces", "a  b   c    d\t\te\n\nf \n g\r\n"),
    ("trailing_newline", "The end.\n"),
    ("leading_spaces", "   indented line\n    more"),
    ("only_whitespace", " \t\n  "),
    ("contractions", "It's, they're, we've, I'm, you'll, he'd, DON'T, it'S 'tis"),
    ("punctuation", "Wait... what?!?! --- (yes) [no] {maybe} <|im_start|> $$$ @@ ##"),
    ("mixed_scripts", "Ελληνικά, русский, עברית, العربية, हिन्दी"),
    ("numbers_unicode", "½ ² ③ ٣ Ⅻ 10⁶"),
    ("long_word", "supercalifragilisticexpialidocious" * 3),
    ("empty", ""),
]


def main():
    tokens, merges, types, meta = load()
    tok = build_tokenizer(tokens, merges)
    cases = []
    for name in ("eval.txt", "calibration.txt"):
        with open(os.path.join("Samples", name), "rb") as f:
            text = f.read().decode("utf-8")
        cases.append(("Samples/" + name, text))
    cases += SHORT
    out = []
    for name, text in cases:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids) == text, name
        entry = {"name": name, "ids": ids}
        if not name.startswith("Samples/"):
            entry["text"] = text
        out.append(entry)
    t0 = time.perf_counter()
    n = 0
    for _ in range(20):
        n += len(tok.encode(cases[1][1], add_special_tokens=False).ids)
    dt = time.perf_counter() - t0
    print(f"tokenizers: {n / dt:.0f} tokens/s on Samples/calibration.txt")
    with open(os.path.join(OUT, "smollm2.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "Tests/Reference/tokenizer_golden.py", "model": MODEL,
                   "cases": out}, f, ensure_ascii=False, indent=0)
    meta.update({"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.merges": merges,
                 "tokenizer.ggml.token_type": types})
    with open(os.path.join(OUT, "smollm2_vocab.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main()
