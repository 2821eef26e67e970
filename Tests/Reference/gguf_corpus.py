#!/usr/bin/env python3
"""Malformed GGUF files for kvscope's reader tests, written byte by byte (no gguf-py: it cannot
write broken files). Each file is small; the expected error text lives in GGUFCorpusTests.swift.

Run from the repository root:  python3 Tests/Reference/gguf_corpus.py
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
from corpus_files import write_cases  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Corpus", "gguf")

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
F32_T, Q4_0_T, Q8_0_T = 0, 2, 8


def s(text: bytes | str) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def tensor_info(name, ne, ggml_type, offset) -> bytes:
    return s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne) + struct.pack("<IQ", ggml_type, offset)


def gguf(kvs=(), infos=(), data=b"", version=3, magic=b"GGUF", n_tensors=None, n_kv=None, alignment=32) -> bytes:
    head = magic + struct.pack("<I", version)
    head += struct.pack("<QQ", len(infos) if n_tensors is None else n_tensors, len(kvs) if n_kv is None else n_kv)
    head += b"".join(kvs) + b"".join(infos)
    head += b"\0" * ((alignment - len(head) % alignment) % alignment)
    return head + data


ARCH = kv("general.architecture", STR, s("llama"))
GOOD = gguf([ARCH, kv("test.count", U32, struct.pack("<I", 7))],
            [tensor_info("a.weight", [4, 2], F32_T, 0), tensor_info("b.weight", [32, 1], Q8_0_T, 32)],
            data=bytes(32) + bytes(34))

CASES = {
    "empty.gguf": b"",
    "truncated.gguf": GOOD[:50],
    "truncated_data.gguf": GOOD[:-10],
    "wrong_magic.gguf": b"GGML" + GOOD[4:],
    "version1.gguf": gguf([ARCH], version=1),
    "version4.gguf": gguf([ARCH], version=4),
    "big_endian.gguf": b"GGUF" + struct.pack(">I", 3) + GOOD[8:],
    "key_length_beyond_file.gguf": gguf([struct.pack("<Q", 1 << 62) + b"general.architecture"]),
    "string_length_beyond_file.gguf": gguf([kv("general.name", STR, struct.pack("<Q", 10_000) + b"abc")]),
    "tensor_count_2_60.gguf": gguf([ARCH], n_tensors=1 << 60),
    "kv_count_2_60.gguf": gguf([ARCH], n_kv=1 << 60),
    "array_2_40.gguf": gguf([kv("tokenizer.ggml.tokens", ARR, struct.pack("<IQ", STR, 1 << 40) + s("a"))]),
    "array_nested_too_deep.gguf": gguf([kv("test.deep", ARR, struct.pack("<IQ", ARR, 1) * 9 + struct.pack("<IQ", U8, 1) + b"\1")]),
    "unknown_value_type.gguf": gguf([kv("test.odd", 13, b"\0" * 8)]),
    "bool_value_2.gguf": gguf([kv("test.flag", BOOL, b"\2")]),
    "duplicate_key.gguf": gguf([ARCH, ARCH]),
    "non_utf8_key.gguf": gguf([kv(b"general.\xff\xfe", U8, b"\1")]),
    "non_utf8_name.gguf": gguf([ARCH], [tensor_info(b"blk.0.\xc3\x28", [4], F32_T, 0)], data=bytes(16)),
    "unknown_type.gguf": gguf([ARCH], [tensor_info("a.weight", [4], 99, 0)], data=bytes(16)),
    "too_many_dims.gguf": gguf([ARCH], [tensor_info("a.weight", [1, 1, 1, 1, 1], F32_T, 0)], data=bytes(4)),
    "dims_overflow.gguf": gguf([ARCH], [tensor_info("a.weight", [1 << 32, 1 << 32], F32_T, 0)], data=bytes(32)),
    "alignment_48.gguf": gguf([ARCH, kv("general.alignment", U32, struct.pack("<I", 48))],
                              [tensor_info("a.weight", [4], F32_T, 0)], data=bytes(16)),
    "alignment_string.gguf": gguf([kv("general.alignment", STR, s("32"))]),
    "partial_block.gguf": gguf([ARCH], [tensor_info("a.weight", [33, 2], Q4_0_T, 0)], data=bytes(64)),
    "unaligned_offset.gguf": gguf([ARCH], [tensor_info("a.weight", [4], F32_T, 8)], data=bytes(32)),
    "data_out_of_bounds.gguf": gguf([ARCH], [tensor_info("a.weight", [4], F32_T, 1 << 20)], data=bytes(16)),
    "offset_beyond_any_file.gguf": gguf([ARCH], [tensor_info("a.weight", [4], F32_T, (1 << 64) - 32)], data=bytes(16)),
    "overlapping.gguf": gguf([ARCH], [tensor_info("a.weight", [16], F32_T, 0), tensor_info("b.weight", [16], F32_T, 32)],
                             data=bytes(128)),
    # 8×64 Q8_0 needs 8·2·34 = 544 bytes; the file holds 512 after the data offset.
    "shape_vs_data.gguf": gguf([ARCH], [tensor_info("a.weight", [64, 8], Q8_0_T, 0)], data=bytes(512)),
}


def main():
    write_cases(OUT, CASES, stale_suffix=".gguf")


if __name__ == "__main__":
    main()
