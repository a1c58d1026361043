"""Error-compensating int8 rounding of the weights (GPTQ, Frantar et al. 2023).

Rounding each weight to its nearest int8 level makes errors that ignore what
the MatMul's inputs look like. GPTQ rounds a weight's input rows one at a time
and moves each row's error onto the rows not yet rounded, in proportion to how
the inputs co-vary (``H = XᵀX`` over the real tokens of sample posts), so that
the errors cancel in the product ``x @ W`` rather than weight by weight. The
int8 grid (symmetric, one scale per output channel), the graph and the speed
stay as they are.

Why it matters here: after smoothing (:mod:`earful.export.smoothing`) the
weights carry part of the activations' range, and their rounding became the
larger share of int8's drift from fp32 (default model, 1,024 sampled training
posts in 32-post runs, mean probability change summed over the heads: 0.0257
with every activation kept in float, 0.0304 fully dynamic). With GPTQ weights
set on 512 posts the fully dynamic model's drift fell to 0.0245 (for the posts
used, see :data:`earful.export.build.CALIBRATION_POSTS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from earful.export.smoothing import token_activations, weighted_matmuls

#: Added to H's diagonal, as a share of its mean: keeps the inverse stable for inputs the sample barely uses.
DAMPING = 0.01
#: Rows rounded between updates of the rest (the result does not depend on it; larger blocks are faster).
BLOCK = 128
LEVELS = 127


def input_hessians(model, batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``XᵀX`` (float64) of every constant-weight MatMul's input over the batches' real tokens."""
    names = list(dict.fromkeys(n.input[0] for n in weighted_matmuls(model)))
    hessians: dict[str, np.ndarray] = {}
    for values in token_activations(model, names, batches):
        for name, x in values.items():
            x = x.astype(np.float64)
            hessians[name] = hessians[name] + x.T @ x if name in hessians else x.T @ x
    return hessians


def round_to_nearest(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel symmetric int8 of ``w`` (shape ``[inputs, outputs]``): ``(levels, scale)``."""
    scale = np.abs(w).max(axis=0) / LEVELS
    scale[scale == 0] = 1.0
    return np.clip(np.round(w / scale), -LEVELS, LEVELS).astype(np.int8), scale.astype(np.float32)


def gptq(w: np.ndarray, h: np.ndarray, damping: float = DAMPING, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ levels for ``w`` (``[inputs, outputs]``, used as ``x @ w``) given ``h = XᵀX``,
    on the grid of :func:`round_to_nearest` (same scales). Rows are taken in
    decreasing order of input energy, the ones whose error matters most first.
    With uncorrelated inputs (diagonal ``h``) nothing is moved and the result is
    round-to-nearest."""
    _, scale = round_to_nearest(w)
    w = w.astype(np.float64).copy()
    h = h.astype(np.float64).copy()
    k = w.shape[0]
    unused = np.diag(h) == 0
    h[unused, unused] = 1.0
    order = np.argsort(-np.diag(h), kind="stable")
    w, h = w[order], h[order][:, order]
    h[np.diag_indices(k)] += damping * np.mean(np.diag(h))
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper factor of H⁻¹: row i tells how row i's error spreads onward
    levels = np.zeros(w.shape, dtype=np.int8)
    for b0 in range(0, k, block):
        b1 = min(k, b0 + block)
        errors = np.zeros((b1 - b0, w.shape[1]))
        for i in range(b0, b1):
            q = np.clip(np.round(w[i] / scale), -LEVELS, LEVELS)
            levels[i] = q
            e = (w[i] - q * scale) / u[i, i]
            w[i + 1 : b1] -= np.outer(u[i, i + 1 : b1], e)
            errors[i - b0] = e
        w[b1:] -= u[b0:b1, b1:].T @ errors
    return levels[np.argsort(order)], scale


def round_weights(path: Path, batches: list[dict[str, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{weight initializer: (int8 levels, scale)}`` for every constant-weight MatMul of
    the ONNX model at ``path``, by GPTQ on the batches' tokens (see :func:`earful.export.build.quantize_int8`)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    hessians = input_hessians(model, batches)
    return {
        node.input[1]: gptq(numpy_helper.to_array(inits[node.input[1]]), hessians[node.input[0]])
        for node in weighted_matmuls(model)
    }
