#!/usr/bin/env python3
"""GGUF files that parse but whose hyper-parameters are hostile (huge layer, head and width counts,
products that overflow 64 bits). The model catalog must reject each with an error instead of
trapping on overflow or reserving memory for 2^62 layers. Expected words:
Tests/TensorFilesTests/ResourceBoundsTests.swift.

Run from the repository root:  python3 Tests/Reference/catalog_corpus.py
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
from corpus_files import write_cases  # noqa: E402
from gguf_corpus import ARR, F32_T, STR, U64, gguf, kv, s, tensor_info  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Corpus", "catalog")


def model(block_count=2, embedding=8, heads=2, kv_heads=None, key_length=None, extra=()):
    kvs = [kv("general.architecture", STR, s("llama")),
           kv("llama.block_count", U64, struct.pack("<Q", block_count)),
           kv("llama.embedding_length", U64, struct.pack("<Q", embedding)),
           kv("llama.attention.head_count", U64, struct.pack("<Q", heads)),
           kv("llama.vocab_size", U64, struct.pack("<Q", 4))]
    if kv_heads is not None:
        kvs.append(kv("llama.attention.head_count_kv", U64, struct.pack("<Q", kv_heads)))
    if key_length is not None:
        kvs.append(kv("llama.attention.key_length", U64, struct.pack("<Q", key_length)))
    kvs += list(extra)
    return gguf(kvs, [tensor_info("token_embd.weight", [8, 4], F32_T, 0)], data=bytes(128))


CASES = {
    "block_count_2_62.gguf": model(block_count=1 << 62),
    "block_count_2_61.gguf": model(block_count=1 << 61),
    "embedding_2_62.gguf": model(embedding=1 << 62, heads=1 << 61),
    "heads_times_dim_overflow.gguf": model(heads=1 << 40, kv_heads=1 << 40, key_length=1 << 40),
    "kv_heads_2_62.gguf": model(heads=1 << 62, kv_heads=1 << 62, key_length=4),
}

if __name__ == "__main__":
    write_cases(OUT, CASES)
