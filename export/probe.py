"""An onnxruntime session that also returns a graph's inner tensors.

The export reads inner tensors three ways: activation statistics for smoothing
and for GPTQ (:mod:`earful.export.smoothing`, :mod:`earful.export.rounding`),
and computed Reshape targets (:mod:`earful.export.static_shapes`). All of them
run a copy of the model with those tensors added as outputs.
"""

from __future__ import annotations


def probe_session(model, names: list[str]):
    """A CPU session of a copy of ``model`` (an ``onnx.ModelProto``) whose outputs
    include every tensor in ``names``, each declared with its inferred element
    type (float where inference cannot tell)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    types = {v.name: v.type.tensor_type.elem_type for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(
        helper.make_tensor_value_info(n, types.get(n, onnx.TensorProto.FLOAT), None) for n in names if n not in known
    )
    return ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
