#!/usr/bin/env python3
"""Golden singular values and eigenvalues for LinearAlgebraTests, computed by numpy.

The matrices are written too (float32 values, exactly), so the Swift test uses the same input.
References are computed in float64 from the float32 data. Regenerate with:
    python3 Tests/Reference/linalg_golden.py > Tests/Golden/linalg/golden.json
"""
import json
import numpy as np

rng = np.random.default_rng(20261129)


def f32(a):
    return np.asarray(a, dtype=np.float32)


cases = []
for name, (m, n) in [("tall", (30, 7)), ("wide", (6, 17)), ("square", (12, 12)), ("one", (1, 1))]:
    a = f32(rng.standard_normal((m, n)))
    s = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    cases.append({"name": name, "rows": m, "cols": n, "data": [float(x) for x in a.ravel()],
                  "singular_values": [float(x) for x in s]})

# Low rank: a 20x16 matrix of rank 5 with a decaying spectrum.
u = np.linalg.qr(rng.standard_normal((20, 5)))[0]
v = np.linalg.qr(rng.standard_normal((16, 5)))[0]
a = f32(u @ np.diag([10.0, 5.0, 2.0, 1.0, 0.5]) @ v.T)
cases.append({"name": "rank5", "rows": 20, "cols": 16, "data": [float(x) for x in a.ravel()],
              "singular_values": [float(x) for x in np.linalg.svd(a.astype(np.float64), compute_uv=False)]})

sym = []
for n in (1, 9, 24):
    x = f32(rng.standard_normal((3 * n, n)))
    g = f32(x.T @ x)  # a Gram matrix, as the engines use
    g = f32((g + g.T) / 2)
    w = np.linalg.eigvalsh(g.astype(np.float64))[::-1]
    sym.append({"n": n, "data": [float(x) for x in g.ravel()], "eigenvalues": [float(x) for x in w]})

print(json.dumps({"generator": "Tests/Reference/linalg_golden.py", "numpy": np.__version__,
                  "svd": cases, "symmetric": sym}, indent=1))
