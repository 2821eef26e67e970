#!/usr/bin/env python3
"""Golden SHA-256 digests for the config tests, from Python's hashlib (an independent reference).

Writes Tests/Golden/config/sha256.json: `vectors` maps "COUNTxCHAR" (COUNT repetitions of one
ASCII character, covering the padding boundaries at 55/56/64 bytes) to its digest, and `files`
maps repository files (the calibration sample and the SmolLM2 model) to theirs.
Run from the repository root: python3 Tests/Reference/config_sha256.py
"""
import hashlib
import json
import pathlib

root = pathlib.Path(__file__).resolve().parents[2]
vectors = {}
for count in [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 1000000]:
    spec = f"{count}xa"
    vectors[spec] = hashlib.sha256(b"a" * count).hexdigest()
files = {}
for rel in ["Samples/calibration.txt", "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"]:
    h = hashlib.sha256()
    with open(root / rel, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    files[rel] = h.hexdigest()
out = root / "Tests/Golden/config/sha256.json"
out.write_text(json.dumps({"vectors": vectors, "files": files}, indent=2, sort_keys=True) + "\n")
print(f"wrote {out}")
