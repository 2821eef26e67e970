#!/usr/bin/env python3
"""Golden facts from the official `safetensors` reader, for SafeTensorsGoldenTests.swift.

Writes into Tests/Golden/safetensors/:
- all_dtypes.safetensors: a fixture written by safetensors.numpy.save_file with one tensor of
  every dtype numpy has (F64 F32 F16 I8 I16 I32 I64 U8 U16 U32 U64 BOOL), plus __metadata__;
- bf16.safetensors: BF16 (numpy has no bfloat16): bit patterns written as U16 by save_file,
  then the header's dtype renamed to BF16; its reference values are computed with numpy as
  float32 from (bits << 16);
- fixtures.json: for both fixtures, every tensor's name, dtype, shape and the sha256 and values
  (float32 bit patterns in hex) of its data converted to little-endian float32;
- minilm.json: the same facts (sha256 only) for models/minilm/model.safetensors, read with
  safetensors.safe_open.

Run:  python3 Tests/Reference/safetensors_golden.py
"""
import hashlib
import json
import os
import struct

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save, save_file

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)
OUT = os.path.join(TESTS, "Golden", "safetensors")


def f32_sha(a):
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def fixture_arrays():
    rng = np.random.default_rng(7)
    floats = np.array([0.0, -0.0, 1.0, -2.5, 3.14159, 65504.0, 1e-3, -1e10], dtype=np.float64)
    return {
        "f64": (floats * 1.000001).reshape(2, 4),
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f16": np.array([0.0, 1.0, -2.0, 0.5, 65504.0, 6.1e-5, 5.96e-8, -0.333], dtype=np.float16),
        "i8": np.array([-128, -1, 0, 1, 127], dtype=np.int8),
        "i16": np.array([-32768, -300, 0, 300, 32767], dtype=np.int16),
        "i32": np.array([[-2147483648, 0], [7, 2147483647]], dtype=np.int32),
        "i64": np.array([-(1 << 40), -1, 0, 1 << 40], dtype=np.int64),
        "u8": np.array([0, 1, 128, 255], dtype=np.uint8),
        "u16": np.array([0, 1, 40000, 65535], dtype=np.uint16),
        "u32": np.array([0, 1, 3000000000, 4294967295], dtype=np.uint32),
        "u64": np.array([0, 1, 1 << 40, 1 << 62], dtype=np.uint64),
        "bool": np.array([[True, False, True], [False, False, True]]),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.array(2.5, dtype=np.float32),
    }


def describe(path, arrays_or_reader, dtype_names, with_values=True):
    out = []
    for name, a in arrays_or_reader:
        entry = {"name": name, "dtype": dtype_names[name], "shape": list(a.shape), "sha256_f32": f32_sha(a)}
        if with_values:
            bits = np.ascontiguousarray(a, dtype="<f4").ravel().view("<u4")
            entry["values_f32_hex"] = [f"{int(x):08x}" for x in bits]
        out.append(entry)
    return out


def header_dtypes(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}


def write_bf16_fixture(path):
    values = np.array([0.0, 1.0, -2.0, 3.140625, -1e30, 1e-30, np.inf, -np.inf], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)  # exact: chosen to be bf16-representable or truncated
    blob = save({"bf16": bits.reshape(2, 4)}, metadata={"note": "U16 renamed to BF16"})
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    header["bf16"]["dtype"] = "BF16"
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + n:])
    reference = (bits.astype(np.uint32) << 16).view(np.float32).reshape(2, 4)
    return reference


def main():
    os.makedirs(OUT, exist_ok=True)
    arrays = fixture_arrays()
    fixture = os.path.join(OUT, "all_dtypes.safetensors")
    save_file(arrays, fixture, metadata={"format": "kvscope-test", "note": "every numpy dtype"})
    loaded = load_file(fixture)  # read back with the official reader
    dtypes = header_dtypes(fixture)
    with safe_open(fixture, framework="numpy") as f:
        metadata = f.metadata()
    bf16_path = os.path.join(OUT, "bf16.safetensors")
    bf16_reference = write_bf16_fixture(bf16_path)
    fixtures = {
        "all_dtypes.safetensors": {
            "metadata": metadata,
            "tensors": describe(fixture, sorted(loaded.items()), dtypes),
        },
        "bf16.safetensors": {
            "metadata": {"note": "U16 renamed to BF16"},
            "tensors": describe(bf16_path, [("bf16", bf16_reference)], {"bf16": "BF16"}),
        },
    }
    with open(os.path.join(OUT, "fixtures.json"), "w") as f:
        json.dump(fixtures, f, indent=1, sort_keys=True)

    minilm = os.path.join(REPO, "models", "minilm", "model.safetensors")
    dtypes = header_dtypes(minilm)
    with safe_open(minilm, framework="numpy") as f:
        tensors = [(k, f.get_tensor(k)) for k in sorted(f.keys())]
        metadata = f.metadata()
    with open(os.path.join(OUT, "minilm.json"), "w") as f:
        json.dump({"metadata": metadata, "tensors": describe(minilm, tensors, dtypes, with_values=False)},
                  f, indent=1, sort_keys=True)
    print(f"wrote {len(arrays)} + 1 fixture tensors and {len(tensors)} MiniLM tensors")


if __name__ == "__main__":
    main()
