#!/usr/bin/env python3
"""A tokenizer.json (the `tokenizers` library's format) that tokenizes like the GGUF it is built from.

transformers' own GGUF tokenizer conversion is lossy (families_reference.py records where: a BOS
that SmolLM2's GGUF does not add, a Unigram model over Gemma 3's BPE scores), so the HF checkpoint
fixtures of `make models` carry this one instead, built from the GGUF metadata alone:

- byte-level BPE (tokenizer.ggml.model = gpt2): the GGUF vocabulary and merges, the pre-tokenizer
  the file names (smollm: Digits(individual) + ByteLevel; qwen2: NFC, Split(Qwen2 regex) + ByteLevel;
  llama-bpe: Split(Llama 3 regex) + ByteLevel; gpt2: ByteLevel), as the upstream HF files have it;
- SentencePiece (tokenizer.ggml.model = llama): BPE merges ranked by the SentencePiece scores
  (transformers' generate_merges), byte_fallback, Replace(" " -> "▁"), as the upstream Gemma
  tokenizer.json has it.

Control tokens (type 3) become special added tokens, user-defined ones (type 4) non-special added
tokens; BOS is in the post-processor when tokenizer.ggml.add_bos_token is true.

Usage: gguf_tokenizer_json.py GGUF OUT.json
"""
import json
import os
import sys
import tempfile

import gguf
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def fields(path):
    r = gguf.GGUFReader(path)
    f = r.fields

    def strings(key):
        return [bytes(f[key].parts[i]).decode("utf-8") for i in f[key].data] if key in f else None

    def scalars(key):
        return [f[key].parts[i][0].item() for i in f[key].data] if key in f else None

    def value(key, default=None):
        if key not in f:
            return default
        v = f[key].contents()
        return v

    return {
        "model": value("tokenizer.ggml.model"), "pre": value("tokenizer.ggml.pre", "default"),
        "tokens": strings("tokenizer.ggml.tokens"), "types": scalars("tokenizer.ggml.token_type"),
        "scores": scalars("tokenizer.ggml.scores"), "merges": strings("tokenizer.ggml.merges"),
        "bos": value("tokenizer.ggml.bos_token_id"), "add_bos": value("tokenizer.ggml.add_bos_token", False),
        "unk": value("tokenizer.ggml.unknown_token_id"),
    }


def added_tokens(tok, m):
    from tokenizers import AddedToken
    specials, users = [], []
    for i, (t, ty) in enumerate(zip(m["tokens"], m["types"] or [1] * len(m["tokens"]))):
        if ty == 3:
            specials.append(AddedToken(t, special=True, normalized=False))
        elif ty == 4:
            users.append(AddedToken(t, special=False, normalized=False))
    tok.add_special_tokens(specials)
    tok.add_tokens(users)


def byte_level(m):
    vocab = {t: i for i, t in enumerate(m["tokens"])}
    merges = [tuple(x.split(" ", 1)) for x in m["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=False, fuse_unk=False))
    pre = m["pre"]
    if pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif pre in ("qwen2", "llama-bpe"):
        if pre == "qwen2":
            tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2 if pre == "qwen2" else LLAMA3), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif pre in ("gpt2", "default"):
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        raise SystemExit(f"gguf_tokenizer_json: pre-tokenizer {pre!r} not handled")
    tok.decoder = decoders.ByteLevel()
    return tok


def sentencepiece(m):
    """BPE merges from the SentencePiece scores: every split of a piece into two pieces of the
    vocabulary is a merge, ranked by the merged piece's score (transformers' generate_merges with
    vocab_scores, what its SentencePiece converter does); control tokens never merge."""
    from transformers.tokenization_utils_base import generate_merges
    vocab = {t: i for i, t in enumerate(m["tokens"])}
    scores = {t: s for t, s in zip(m["tokens"], m["scores"])}
    control = {t for t, ty in zip(m["tokens"], m["types"]) if ty == 3}
    merges = generate_merges(vocab, scores, skip_tokens=control)
    unk = m["tokens"][m["unk"]] if m["unk"] is not None else None
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    return tok


def build(path):
    m = fields(path)
    if m["model"] == "gpt2":
        tok = byte_level(m)
    elif m["model"] == "llama":
        tok = sentencepiece(m)
    else:
        raise SystemExit(f"gguf_tokenizer_json: tokenizer model {m['model']!r} not handled")
    added_tokens(tok, m)
    if m["add_bos"]:
        bos = m["tokens"][m["bos"]]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, m["bos"])])
    if tok.get_vocab_size(with_added_tokens=True) != len(m["tokens"]):
        raise SystemExit(f"gguf_tokenizer_json: {tok.get_vocab_size(with_added_tokens=True)} tokens, the GGUF has {len(m['tokens'])}")
    return tok


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    build(sys.argv[1]).save(sys.argv[2])
