"""Static Reshape targets: the rewrite is exact at any batch and length, and the
shape-computing chains leave the graph."""

import numpy as np
import onnx
import onnxruntime as ort

from earful.export.static_shapes import _target, static_reshapes


def test_target_reads_constants_copies_and_the_remainder():
    # view(batch, seq, 4, 8) of [batch, seq, 32]; probes (3, 7) and (5, 13)
    assert _target([np.array([3, 7, 4, 8]), np.array([5, 13, 4, 8])], [(3, 7, 32), (5, 13, 32)]) == [0, 0, 4, 8]
    # view(batch * seq, 32): the first dimension is what is left
    assert _target([np.array([21, 32]), np.array([65, 32])], [(3, 7, 32), (5, 13, 32)]) == [-1, 32]
    # two dimensions that are neither constant nor copied: no static form
    assert _target([np.array([21, 2]), np.array([65, 3])], [(42,), (195,)]) is None
    assert _target([np.array([3, 7]), np.array([5, 13, 1])], [(21,), (65,)]) is None


def test_static_reshapes_are_exact_and_drop_the_shape_chains(tiny_run, tmp_path):
    from earful.export.build import export_onnx
    from earful.training.network import MultiTaskModel

    model = MultiTaskModel.load(tiny_run / "best")
    raw, static = tmp_path / "raw.onnx", tmp_path / "static.onnx"
    export_onnx(model, raw)
    n = static_reshapes(raw, static)
    before, after = onnx.load(str(raw)), onnx.load(str(static))
    onnx.checker.check_model(after)

    def computed(m):
        constant = {i.name for i in m.graph.initializer} | {
            node.output[0] for node in m.graph.node if node.op_type == "Constant"
        }
        return sum(node.op_type == "Reshape" and node.input[1] not in constant for node in m.graph.node)

    # every attention reshape became static; what is left (the mask's, of flattened data) has no static form
    assert n >= 4 * 2 and computed(after) == computed(before) - n and computed(after) < n
    count = lambda m, op: sum(node.op_type == op for node in m.graph.node)  # noqa: E731
    assert count(after, "Shape") < count(before, "Shape") and len(after.graph.node) < len(before.graph.node)
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (raw, static)]
    rng = np.random.default_rng(0)
    for batch, seq in ((1, 1), (1, 3), (4, 17), (2, 40)):  # none of them a probe shape
        ids = rng.integers(3, 100, (batch, seq))
        mask = np.ones((batch, seq), dtype=np.int64)
        mask[0, seq // 2 + 1 :] = 0
        a, b = (s.run(None, {"input_ids": ids, "attention_mask": mask}) for s in sessions)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_export_records_the_rewrite(tiny_bundle):
    import json

    assert json.loads((tiny_bundle / "metrics.json").read_text())["graph"]["static_reshapes"] > 0
