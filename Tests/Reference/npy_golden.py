#!/usr/bin/env python3
"""numpy-written .npy fixtures for NpyTests.swift, in Tests/Golden/npy/.

For every format version (1.0, 2.0, 3.0) and dtype (<f2, <f4, <f8), `v{V}_{dtype}.npy` holds
the same 3×5 array written by numpy.lib.format.write_array; `scalar_f4.npy` is 0-d and
`empty_f8.npy` has shape (0, 4). values.json lists each file's shape and its values as float64
bit patterns (hex), as numpy reads them back, so the comparison is exact.

Run:  python3 Tests/Reference/npy_golden.py
"""
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Golden", "npy")


def main():
    os.makedirs(OUT, exist_ok=True)
    base = np.array([0.0, -0.0, 1.0, -1.5, 0.1, 1e-5, 65504.0, -65504.0,
                     3.0e-8, 123.456, np.inf, -np.inf, 2.0 ** -14, 7.0, -1e-3]).reshape(3, 5)
    arrays = {}
    for version in (1, 2, 3):
        for code in ("f2", "f4", "f8"):
            arrays[f"v{version}_{code}.npy"] = (base.astype("<" + code), (version, 0))
    arrays["scalar_f4.npy"] = (np.array(2.5, dtype="<f4"), (1, 0))
    arrays["empty_f8.npy"] = (np.zeros((0, 4), dtype="<f8"), (1, 0))
    facts = {}
    for name, (a, version) in arrays.items():
        path = os.path.join(OUT, name)
        with open(path, "wb") as f:
            np.lib.format.write_array(f, a, version=version)
        back = np.load(path)
        assert back.dtype == a.dtype and back.shape == a.shape
        facts[name] = {
            "version": version[0],
            "descr": back.dtype.str,
            "shape": list(back.shape),
            "values_f64_hex": [f"{int(x):016x}" for x in back.astype(np.float64).ravel().view(np.uint64)],
        }
    with open(os.path.join(OUT, "values.json"), "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)
    print(f"wrote {len(arrays)} npy fixtures")


if __name__ == "__main__":
    main()
