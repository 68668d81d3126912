#!/usr/bin/env python3
"""Fits the rational erf of GeluFastInPlace (src/core/attention.cc) and checks it in float32.

erf(z) ~= z P(z^2) / Q(z^2) on [0, 4], P of degree 5, Q of degree 5 with Q(0) = 1: linearised
least squares (y Q = z P) divided by the previous Q each round (Loeb), with Lawson weights that
grow where the error is largest, so the result approaches the minimax fit. Prints the
coefficients (as the kernel stores them), the fit's error in double and in float32 (Horner, as
the kernel evaluates it), and GELU's error against the exact function over [-10, 10] relative to
max(1, |x|) - the bound tests/core/lowp_gemm_test.cc checks (1e-6).

Usage: python3 scripts/fit_gelu_erf.py  (needs numpy; a development tool, not used by the build)
"""
from math import erf

import numpy as np

DEG_P, DEG_Q, ZMAX, CLAMP = 5, 5, 4.0, 4.5


def fit(z, y, rounds=40):
    w = z * z
    q_prev = np.ones_like(z)
    weight = np.ones_like(z)
    for _ in range(rounds):
        a = np.hstack([np.stack([z * w**i for i in range(DEG_P + 1)], 1),
                       -np.stack([y * w**i for i in range(1, DEG_Q + 1)], 1)])
        sol, *_ = np.linalg.lstsq(a / q_prev[:, None] * weight[:, None], y / q_prev * weight,
                                  rcond=None)
        p, q = sol[:DEG_P + 1], np.concatenate([[1.0], sol[DEG_P + 1:]])
        q_prev = np.polyval(q[::-1], w)
        err = np.abs(z * np.polyval(p[::-1], w) / q_prev - y)
        weight = weight * np.sqrt(err / err.max() + 1e-3)
        weight /= weight.mean()
    return p, q, err.max()


def erf_f32(z, p, q):
    z = z.astype(np.float32)
    w = z * z
    pp, qq = np.float32(p[-1]), np.float32(q[-1])
    for c in range(len(p) - 2, -1, -1):
        pp = (pp * w + np.float32(p[c])).astype(np.float32)
        qq = (qq * w + np.float32(q[c])).astype(np.float32)
    return np.clip(z * pp / qq, -1.0, 1.0).astype(np.float32)


def main():
    z = np.linspace(0.0, ZMAX, 20001)[1:]
    y = np.array([erf(t) for t in z])
    p, q, e = fit(z, y)
    print("kErfP =", ", ".join(repr(float(c)) for c in p))
    print("kErfQ =", ", ".join(repr(float(c)) for c in q))
    print(f"erf error on [0, {ZMAX}]: double {e:.2e}, float32 "
          f"{np.abs(erf_f32(z, p, q) - y).max():.2e}")
    x = np.arange(-10.0, 10.0001, 0.001).astype(np.float32)
    zc = np.clip(x * np.float32(0.70710678118654752), -CLAMP, CLAMP)
    hv = (np.float32(0.5) * x).astype(np.float32)
    g = (hv + hv * erf_f32(zc, p, q)).astype(np.float64)
    ref = np.array([0.5 * float(t) * (1.0 + erf(float(t) / 2**0.5)) for t in x])
    rel = np.abs(g - ref) / np.maximum(1.0, np.abs(x))
    print(f"GELU error / max(1, |x|) over [-10, 10]: {rel.max():.2e} at x = {x[rel.argmax()]}")


if __name__ == "__main__":
    main()
