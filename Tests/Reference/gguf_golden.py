#!/usr/bin/env python3
"""Golden values for kvscope's GGUF reader, from the official gguf-py (0.19.0).

Writes into Tests/Golden/gguf/:
  smollm2_dequant.json   header facts and per-tensor sha256 of gguf-py's dequantize (float32 LE)
                         for every tensor of models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  fixture_types.gguf     one small tensor per type: gguf-py's quantize for the types it can
                         quantize, random raw blocks (finite fp16 scales) for the others (k-quants),
                         the source floats as F32, and metadata of every value type
  fixture_types.json     per-tensor sha256 of gguf-py's dequantize, plus the metadata written

Run from the repository root:  python3 Tests/Reference/gguf_golden.py
"""
import hashlib
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from gguf.quants import dequantize, quantize

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Golden", "gguf")
MODEL = os.path.join(ROOT, "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def sha256_f32(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def weighted_sum(a: np.ndarray) -> str:
    """sum over i of (2i+1) * bits(a[i]) mod 2^64, as 16 hex digits: a checksum Swift debug builds can
    afford on 135M values (a single changed value always changes it, since 2i+1 is odd)."""
    bits = np.ascontiguousarray(a, dtype="<f4").reshape(-1).view("<u4").astype(np.uint64)
    weights = np.arange(bits.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return f"{int(np.sum(bits * weights, dtype=np.uint64)):016x}"


def first_bits(a: np.ndarray, n: int = 4) -> list[int]:
    return [int(x) for x in np.ascontiguousarray(a, dtype="<f4").reshape(-1)[:n].view("<u4")]


def field_value(f):
    """A JSON-able summary of a metadata field: scalars whole, arrays by count and first elements."""
    t = f.types[0]
    if t == V.ARRAY:
        n = len(f.data)
        first = [f.contents(i) for i in range(min(n, 3))] if f.types[1] != V.ARRAY else None
        return {"type": "array", "element_type": f.types[1].name.lower(), "count": n, "first": first}
    v = f.contents()
    if t in (V.FLOAT32, V.FLOAT64):
        v = float(v)
    return {"type": t.name.lower(), "value": v}


def smollm2():
    r = gguf.GGUFReader(MODEL)
    metadata = {}
    keys = []
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        keys.append(name)
        metadata[name] = field_value(f)
    tensors = []
    for t in r.tensors:
        values = dequantize(t.data, t.tensor_type)
        shape = [int(x) for x in reversed(t.shape.tolist())]
        assert list(values.shape) == shape, (t.name, values.shape, shape)
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "shape": shape,
            "offset": int(t.data_offset),
            "bytes": int(t.n_bytes),
            "sha256": sha256_f32(values),
            "weighted_sum": weighted_sum(values),
            "first_bits": first_bits(values),
        })
    return {
        "file": "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "gguf_py": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
        "version": int(r.fields["GGUF.version"].contents()),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata_keys": keys,
        "metadata": metadata,
        "tensors": tensors,
    }


def finite_halves(rng, n):
    """n random fp16 bit patterns that are finite (normal, subnormal or zero), as uint16."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    bad = (bits & 0x7C00) == 0x7C00
    bits[bad] &= np.uint16(0xBFFF)  # clear the top exponent bit: inf/NaN become finite
    return bits


# Byte offsets of the fp16 fields in each block, from ggml's block layouts.
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def random_blocks(rng, qtype, rows, cols):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // block
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in HALF_FIELDS[qtype]:
        raw[:, off:off + 2] = finite_halves(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(rows, cols // block * size)


def fixture():
    rng = np.random.default_rng(20250207)
    rows, cols = 8, 512
    source = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    source[0, :32] = 0.0                      # a constant block (d = 0)
    source[1, :32] = np.linspace(-1, 1, 32)   # exact ties for the rounding rules
    path = os.path.join(OUT, "fixture_types.gguf")
    w = gguf.GGUFWriter(path, arch="fixture")
    md = {}

    def kv(key, value, vtype, sub=None):
        w.add_key_value(key, value, vtype, sub)
        md[key] = {"type": vtype.name.lower(), "value": value}
        if sub is not None:
            md[key]["element_type"] = sub.name.lower()

    kv("test.uint8", 200, V.UINT8)
    kv("test.int8", -100, V.INT8)
    kv("test.uint16", 60000, V.UINT16)
    kv("test.int16", -30000, V.INT16)
    kv("test.uint32", 4000000000, V.UINT32)
    kv("test.int32", -2000000000, V.INT32)
    kv("test.uint64", 18000000000000000000, V.UINT64)
    kv("test.int64", -9000000000000000000, V.INT64)
    kv("test.float32", 0.1, V.FLOAT32)          # stored as float32(0.1)
    kv("test.float64", 0.1, V.FLOAT64)
    kv("test.bool", True, V.BOOL)
    kv("test.string", "héllo, wörld ✓", V.STRING)
    kv("test.array_int32", [1, -2, 3], V.ARRAY, V.INT32)
    kv("test.array_float32", [0.5, -1.25], V.ARRAY, V.FLOAT32)
    kv("test.array_string", ["a", "", "ü"], V.ARRAY, V.STRING)
    kv("test.array_bool", [True, False], V.ARRAY, V.BOOL)
    kv("test.nested", [[1, 2], [3]], V.ARRAY, V.ARRAY)  # inner arrays of int32

    tensors = []

    def add(name, qtype, data, golden):
        if qtype in (T.F32, T.F16):
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=qtype)
        tensors.append({"name": name, "type": qtype.name, "shape": [rows, cols],
                        "sha256": sha256_f32(golden), "weighted_sum": weighted_sum(golden),
                        "first_bits": first_bits(golden)})

    add("source", T.F32, source, source)
    half = source.astype(np.float16)
    half[2, :4] = np.array([6.0e-8, -6.0e-5, 65504.0, -0.0], dtype=np.float16)  # subnormal, max, -0
    add("F16", T.F16, half, dequantize(half.view(np.uint8), T.F16))
    for qtype in (T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        q = quantize(source, qtype)
        add(qtype.name, qtype, q, dequantize(q, qtype))
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        raw = random_blocks(rng, qtype, rows, cols)
        add("raw." + qtype.name, qtype, raw, dequantize(raw, qtype))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Check the file with gguf-py's reader: the written bytes dequantize to the golden values.
    r = gguf.GGUFReader(path)
    for t, g in zip(r.tensors, tensors):
        assert t.name == g["name"] and t.tensor_type.name == g["type"]
        assert sha256_f32(dequantize(t.data, t.tensor_type)) == g["sha256"], t.name
    return {"file": "Tests/Golden/gguf/fixture_types.gguf", "metadata": md, "tensors": tensors}


def main():
    os.makedirs(OUT, exist_ok=True)
    fx = fixture()
    with open(os.path.join(OUT, "fixture_types.json"), "w") as f:
        json.dump(fx, f, indent=1, ensure_ascii=False)
        f.write("\n")
    if not os.path.exists(MODEL):
        sys.exit(f"missing {MODEL}: run `make models` first")
    sm = smollm2()
    with open(os.path.join(OUT, "smollm2_dequant.json"), "w") as f:
        json.dump(sm, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(fx['tensors'])} fixture tensors and {len(sm['tensors'])} SmolLM2 tensors to {OUT}")


if __name__ == "__main__":
    main()
