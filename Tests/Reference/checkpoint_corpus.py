#!/usr/bin/env python3
"""Writes the seed corpora of FuzzCheckpointIndex and FuzzHFConfig:
Tests/Corpus/checkpoint_index/ and Tests/Corpus/hf_config/.

checkpoint_index: each file is a model.safetensors.index.json, optionally followed by a NUL byte and
a config.json. It describes the fixed in-memory shards of Fuzz/CheckpointIndex/FuzzCheckpointIndex.swift
(repeated below as SHARDS). Files named valid_* must open as a folder; every other file must end in a
TensorFileError (CheckpointFolderTests.corpusIndexOpensOrThrowsATypedError replays them).

hf_config: config.json files; the three real ones are copied from models/hf/*-bf16 when present.

Run:  python3 Tests/Reference/checkpoint_corpus.py
"""
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INDEX = os.path.join(ROOT, "Corpus", "checkpoint_index")
CONFIG = os.path.join(ROOT, "Corpus", "hf_config")
MODELS = os.path.join(os.path.dirname(ROOT), "models", "hf")

SIZE = {"BF16": 2, "F32": 4, "I64": 8}
SHARDS = {
    "model-00001-of-00002.safetensors": [("model.embed_tokens.weight", [16, 8], "BF16"),
                                         ("model.layers.0.self_attn.q_proj.weight", [8, 8], "BF16"),
                                         ("model.layers.0.input_layernorm.weight", [8], "F32")],
    "model-00002-of-00002.safetensors": [("model.layers.1.self_attn.q_proj.weight", [8, 8], "BF16"),
                                         ("model.norm.weight", [8], "BF16"),
                                         ("model.layers.1.mlp.up_proj.weight", [2, 4], "F32"),
                                         ("model.position_ids", [4], "I64")],
    "model-extra.safetensors": [("model.layers.0.self_attn.q_proj.weight", [8, 8], "BF16")],
    "model.safetensors": [("lm_head.weight", [1, 2], "F32")],
}


def nbytes(shape, dtype):
    n = 1
    for d in shape:
        n *= d
    return n * SIZE[dtype]


def index(shards, total=True, extra_map=None, drop=(), metadata=None):
    weight_map, size = {}, 0
    for s in shards:
        for name, shape, dtype in SHARDS[s]:
            if name in drop:
                continue
            weight_map[name] = s
            size += nbytes(shape, dtype)
    weight_map.update(extra_map or {})
    doc = {"weight_map": weight_map}
    if metadata is not None:
        doc["metadata"] = metadata
    elif total:
        doc["metadata"] = {"total_size": size}
    return json.dumps(doc, indent=1).encode()


LLAMA = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 1,
         "vocab_size": 16}
TWO = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


def with_config(index_bytes, config):
    return index_bytes + b"\0" + (config if isinstance(config, bytes) else json.dumps(config).encode())


INDEX_FILES = {
    "valid_two_shards.json": index(TWO),
    "valid_no_total_size.json": index(TWO, total=False),
    "valid_single_named_shard.json": index(["model.safetensors"]),
    "valid_f32_config.bin": with_config(index(["model.safetensors"]), dict(LLAMA, torch_dtype="float32")),
    "bf16_config_f32_matrix.bin": with_config(index(TWO), dict(LLAMA, torch_dtype="bfloat16")),
    "dtype_keys_disagree.bin": with_config(index(TWO), dict(LLAMA, torch_dtype="bfloat16", dtype="float16")),
    "config_not_object.bin": with_config(index(TWO), b"[1]"),
    "tensor_in_two_shards.json": index(TWO + ["model-extra.safetensors"]),
    "tensor_not_listed.json": index(TWO, drop=("model.position_ids",)),
    "tensor_absent_from_shard.json": index(TWO, extra_map={"model.layers.2.self_attn.q_proj.weight": TWO[1]}),
    "tensor_in_other_shard.json": index(TWO, extra_map={"model.norm.weight": TWO[0]}),
    "shard_missing.json": index(TWO, extra_map={"x": "model-00003-of-00003.safetensors"}),
    "shard_path_separator.json": index(TWO, extra_map={"x": "../model.safetensors"}),
    "shard_dot_dot.json": index(TWO, extra_map={"x": ".."}),
    "shard_not_safetensors.json": index(TWO, extra_map={"x": "config.json"}),
    "total_size_wrong.json": index(TWO, metadata={"total_size": 623}),
    "total_size_negative.json": index(TWO, metadata={"total_size": -1}),
    "total_size_huge.json": index(TWO, metadata={"total_size": 2 ** 70}),
    "total_size_string.json": index(TWO, metadata={"total_size": "624"}),
    "metadata_not_object.json": index(TWO, metadata=[624]),
    "weight_map_non_string.json": b'{"weight_map": {"model.norm.weight": 2}}',
    "weight_map_not_object.json": b'{"weight_map": ["model.safetensors"]}',
    "weight_map_empty.json": b'{"weight_map": {}}',
    "no_weight_map.json": b'{"metadata": {"total_size": 0}}',
    "not_an_object.json": b'["weight_map"]',
    "bad_json.json": b'{"weight_map": {"a": "model.safetensors",}}',
    "empty.json": b"",
}

CONFIG_FILES = {
    "llama_tiny.json": dict(LLAMA, num_key_value_heads=1, intermediate_size=12, torch_dtype="bfloat16"),
    "layers_2_62.json": dict(LLAMA, num_hidden_layers=2 ** 62),
    "hidden_2_62.json": dict(LLAMA, hidden_size=2 ** 62),
    "heads_zero.json": dict(LLAMA, num_attention_heads=0),
    "kv_heads_not_dividing.json": dict(LLAMA, num_attention_heads=4, num_key_value_heads=3),
    "head_dim_huge.json": dict(LLAMA, head_dim=2 ** 40),
    "head_dim_float.json": dict(LLAMA, head_dim=2.5),
    "torch_dtype_number.json": dict(LLAMA, torch_dtype=16),
    "dtype_keys_disagree.json": dict(LLAMA, torch_dtype="bfloat16", dtype="float32"),
    "rope_parameters.json": dict(LLAMA, rope_parameters={"rope_theta": 100000.0, "rope_type": "default"}),
    "not_an_object.json": [1, 2],
}


def main():
    for d in (INDEX, CONFIG):
        os.makedirs(d, exist_ok=True)
    for name, data in INDEX_FILES.items():
        with open(os.path.join(INDEX, name), "wb") as f:
            f.write(data)
    for name, doc in CONFIG_FILES.items():
        with open(os.path.join(CONFIG, name), "w") as f:
            json.dump(doc, f, indent=1)
    with open(os.path.join(CONFIG, "nested_too_deep.json"), "w") as f:
        f.write("{\"a\":" * 100 + "1" + "}" * 100)
    with open(os.path.join(CONFIG, "truncated.json"), "w") as f:
        f.write('{"model_type": "llama", "num_hidden_layers": 2, "hidd')
    for model in ("smollm2", "qwen2", "gemma3"):
        src = os.path.join(MODELS, f"{model}-bf16", "config.json")
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(CONFIG, f"{model}_bf16.json"))


if __name__ == "__main__":
    main()
