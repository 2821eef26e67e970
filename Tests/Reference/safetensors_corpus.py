#!/usr/bin/env python3
"""Writes the malformed-file corpus under Tests/Corpus/{safetensors,npy}.

Each file breaks one rule of its format; Tests/TensorFilesTests/SafeTensorsCorpusTests.swift
and NpyCorpusTests.swift expect a TensorFileError with a specific message for each, and the
CLI tests expect `kvscope: error: FILE: ...` and exit status 1.

Run:  python3 Tests/Reference/safetensors_corpus.py [--check]
"""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ST = os.path.join(ROOT, "Corpus", "safetensors")
NPY = os.path.join(ROOT, "Corpus", "npy")


def st_file(header, data=b"", raw_header=None, declared_length=None):
    """A safetensors file from a header dict (or raw header bytes) and data bytes."""
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    n = len(h) if declared_length is None else declared_length
    return struct.pack("<Q", n) + h + data


def f32(name, begin, end, shape):
    return {name: {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]}}


def merge(*ds):
    out = {}
    for d in ds:
        out.update(d)
    return out


SAFETENSORS = {
    "empty": b"",
    "truncated_length": b"\x10\x00\x00",
    "header_beyond_file": st_file(None, raw_header=b'{"a":1}', declared_length=1000),
    "header_too_large": st_file(None, raw_header=b"{}", declared_length=200_000_000),
    "bad_json": st_file(None, raw_header=b'{"a": {"dtype": "F32", "shape": [2], '),
    "not_an_object": st_file(None, raw_header=b"[1, 2, 3]"),
    "unknown_dtype": st_file({"a": {"dtype": "F7", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
    "data_out_of_bounds": st_file(f32("a", 0, 16, [4]), b"\0" * 8),
    "overlapping_offsets": st_file(merge(f32("a", 0, 8, [2]), f32("b", 4, 12, [2])), b"\0" * 12),
    "gap_between_tensors": st_file(merge(f32("a", 0, 8, [2]), f32("b", 12, 20, [2])), b"\0" * 20),
    "not_starting_at_zero": st_file(f32("a", 4, 12, [2]), b"\0" * 12),
    "trailing_bytes": st_file(f32("a", 0, 8, [2]), b"\0" * 12),
    "shape_length_mismatch": st_file(f32("a", 0, 8, [3]), b"\0" * 8),
    "dims_overflow": st_file(f32("a", 0, 0, [1 << 32, 1 << 32, 16]), b""),
    "huge_offsets": st_file({"a": {"dtype": "U8", "shape": [1 << 60], "data_offsets": [0, 1 << 60]}}, b"\0" * 8),
    "offset_beyond_int64": st_file(None, raw_header=b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551617]}}'),
    "negative_dim": st_file(f32("a", 0, 8, [-2]), b"\0" * 8),
    "offsets_reversed": st_file(f32("a", 8, 0, [0]), b""),
    "non_utf8_name": st_file(None, raw_header=b'{"a\xff\xfe":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', data=b"\0" * 4),
    "duplicate_name": st_file(None, raw_header=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', data=b"\0" * 4),
    "metadata_not_strings": st_file(merge({"__metadata__": {"format": 1}}, f32("a", 0, 4, [1])), b"\0" * 4),
    "deep_nesting": st_file(None, raw_header=b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"),
    "missing_dtype": st_file({"a": {"shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
}


def npy_file(header_text, data=b"", major=1, magic=b"\x93NUMPY", minor=0, declared_length=None):
    h = header_text.encode("latin1")
    fmt = "<H" if major == 1 else "<I"
    n = len(h) if declared_length is None else declared_length
    return magic + bytes([major, minor]) + struct.pack(fmt, n) + h + data


def npy_dict(descr="<f4", fortran="False", shape="(2,)"):
    text = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
    pad = 64 - (10 + len(text) + 1) % 64
    return text + " " * pad + "\n"


NPY_CASES = {
    "empty": b"",
    "truncated_magic": b"\x93NUM",
    "bad_magic": b"\x93NUMPX\x01\x00" + b"\0" * 64,
    "bad_version": npy_file(npy_dict(), b"\0" * 8, major=4),
    "bad_minor_version": npy_file(npy_dict(), b"\0" * 8, minor=1),
    "header_beyond_file": npy_file(npy_dict(), b"", declared_length=4000),
    "bad_header_dict": npy_file("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }\n", b"\0" * 8),
    "missing_shape": npy_file("{'descr': '<f4', 'fortran_order': False, }\n", b"\0" * 8),
    "fortran_order": npy_file(npy_dict(fortran="True", shape="(2, 2)"), b"\0" * 16),
    "unsupported_dtype": npy_file(npy_dict(descr="<i4"), b"\0" * 8),
    "big_endian": npy_file(npy_dict(descr=">f4"), b"\0" * 8),
    "truncated_data": npy_file(npy_dict(shape="(4,)"), b"\0" * 8),
    "trailing_bytes": npy_file(npy_dict(shape="(1,)"), b"\0" * 8),
    "shape_overflow": npy_file(npy_dict(shape="(1099511627776, 1099511627776)"), b""),
    "non_utf8_v3_header": npy_file(npy_dict().replace("<f4", "<f\xff"), b"\0" * 8, major=3),
}


def main():
    os.makedirs(ST, exist_ok=True)
    os.makedirs(NPY, exist_ok=True)
    for name, data in SAFETENSORS.items():
        with open(os.path.join(ST, name + ".safetensors"), "wb") as f:
            f.write(data)
    for name, data in NPY_CASES.items():
        with open(os.path.join(NPY, name + ".npy"), "wb") as f:
            f.write(data)
    print(f"wrote {len(SAFETENSORS)} safetensors and {len(NPY_CASES)} npy corpus files")
    if "--check" in sys.argv:
        check_with_official_readers()


def check_with_official_readers():
    """Prints what the official readers say about each file (kvscope rejects every one).

    The official safetensors reader rejects all but duplicate_name (serde keeps the last
    entry); numpy accepts big_endian, fortran_order, unsupported_dtype (<i4) and
    trailing_bytes, which kvscope deliberately does not read.
    """
    import numpy as np
    import safetensors.numpy as sn
    for name, data in SAFETENSORS.items():
        try:
            sn.load(data)
            print(f"official safetensors ACCEPTS {name}")
        except Exception as e:  # noqa: BLE001 - any rejection counts
            print(f"official safetensors rejects {name}: {str(e).splitlines()[0][:90]}")
    for name in NPY_CASES:
        try:
            np.load(os.path.join(NPY, name + ".npy"))
            print(f"numpy ACCEPTS {name}")
        except Exception as e:  # noqa: BLE001
            print(f"numpy rejects {name}: {str(e).splitlines()[0][:90]}")


if __name__ == "__main__":
    main()
