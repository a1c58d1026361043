"""Static Reshape targets in the exported graph.

The legacy ONNX exporter traces ``x.view(batch, seq, heads, head_dim)`` with
dynamic batch and sequence axes as a chain of Shape → Gather → Unsqueeze →
Concat feeding each Reshape: about 200 of the int8 graph's 660 nodes at run
time, computed anew on every run. ONNX can say the same thing with a constant
target, where ``0`` copies the input's dimension and ``-1`` takes what is left
(``[0, 0, 12, 32]``), and the chains then fall away.

Each dynamic target is worked out by running the graph at two unrelated input
shapes and reading, per dimension, whether it is a constant, the input's own
dimension, or the remainder. A Reshape whose target fits none of these is left
as it was. The rewrite is exact (the export's parity check against torch runs
posts of many lengths through it). Its effect on short runs is measured in docs/quantization.md,
"Static shapes".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from earful.export.probe import probe_session

#: Two (batch, sequence) probes: distinct from each other and from the model's constant dimensions.
PROBES = ((3, 7), (5, 13))


def _target(shapes: list[np.ndarray], inputs: list[tuple[int, ...]]) -> list[int] | None:
    """The static form of a Reshape target seen as ``shapes`` for data of shapes ``inputs``, or None."""
    if len({len(s) for s in shapes}) != 1:
        return None
    out = []
    for i, values in enumerate(zip(*shapes, strict=True)):
        if len(set(values)) == 1 and values[0] > 0:
            out.append(int(values[0]))
        elif all(i < len(x) and x[i] == v for x, v in zip(inputs, values, strict=True)):
            out.append(0)
        else:
            out.append(-1)
    return out if out.count(-1) <= 1 else None


def static_reshapes(src: Path, dst: Path) -> int:
    """Write ``src`` with every Reshape's computed target replaced by a constant one,
    and the nodes nothing reads any more removed, to ``dst``; returns how many
    Reshapes were rewritten."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    constant = {i.name for i in model.graph.initializer} | {
        n.output[0] for n in model.graph.node if n.op_type == "Constant"
    }
    reshapes = [
        n
        for n in model.graph.node
        if n.op_type == "Reshape"
        and n.input[1] not in constant
        and not any(a.name == "allowzero" and a.i for a in n.attribute)
    ]
    if not reshapes:
        onnx.save(model, str(dst))
        return 0
    names = list(dict.fromkeys(x for n in reshapes for x in n.input[:2]))
    sess = probe_session(model, names)
    seen = []
    for batch, seq in PROBES:
        feed = {i.name: np.ones((batch, seq), dtype=np.int64) for i in sess.get_inputs()}
        seen.append(dict(zip(names, sess.run(names, feed), strict=True)))
    rewritten = 0
    for node in reshapes:
        target = _target([s[node.input[1]] for s in seen], [s[node.input[0]].shape for s in seen])
        if target is None:
            continue
        name = node.name + "_static_target"
        model.graph.initializer.append(numpy_helper.from_array(np.array(target, dtype=np.int64), name))
        node.input[1] = name
        rewritten += 1
    needed = {o.name for o in model.graph.output}
    kept = []
    for node in reversed(model.graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    del model.graph.node[:]
    model.graph.node.extend(reversed(kept))
    unused = [i for i in model.graph.initializer if i.name not in needed]
    for init in unused:
        model.graph.initializer.remove(init)
    onnx.save(model, str(dst))
    return rewritten
