"""One int8 activation scale per token, so that a post's result does not depend on its batch.

onnxruntime's dynamic quantization (``DynamicQuantizeLinear``) gives each activation tensor one scale and
zero point, set by the extremes of the whole ``[posts, tokens, channels]`` tensor: every post of a run, and
its padding, move the levels of every other post. A post's labels then changed with what it was batched
with (about 1% of labels on validation posts, see docs/quantization.md), so the service, batch scoring and
the CLI could disagree on the same post.

:func:`per_token_activations` replaces each ``DynamicQuantizeLinear`` with standard ops that quantize every
token's row on its own, symmetrically: ``scale = max|x_row| / 127``, stored as ``uint8`` around a fixed zero
point of 128, so the ``MatMulInteger`` nodes, their ``uint8 × int8`` kernel and the per-channel weight scales
stay as they are; the row scale multiplies the float output. The MatMuls the export kept out of dynamic
quantization (heavy-tailed inputs, run by onnxruntime as MatMulNBits at about 3x the cost) take the same
path, and the heads, which read a mean over the post's tokens, run their int8 weights in float (see the
comments below). Every value of a post is then computed from that post alone. Not chosen: ``int8 × int8``
``MatMulInteger`` (no fast x86 kernel in onnxruntime 1.31), a zero point per row (refused by its CPU
``MatMulInteger``), static scales set on sample posts (one range for posts of every kind).
Measurements: docs/quantization.md.

The rewrite needs only the int8 graph, so it also applies to a bundle exported before it existed
(:func:`rewrite_bundle`, ``python -m earful.export.token_scales BUNDLE --version V``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: Symmetric levels either side of the zero point (uint8 128 ± 127: 255 levels, as many as int8 gives).
LEVELS = 127
ZERO_POINT = 128
#: Where ``export_parity`` in metrics.json records the rewrite.
METRICS_KEY = "int8_activation_scales"
METHOD = "per token, symmetric; the MatMuls kept out of dynamic quantization too; the heads' input in float"
CARD_LINE = (
    "- int8 activations quantized with one scale per token (the heads run their int8 weights in float), so a "
    "post's result does not depend on its batch."
)


def graph_index(graph) -> tuple[dict, dict, dict[str, list]]:
    """An ONNX graph's initializers by name, the node making each value, and the nodes reading each value."""
    inits = {i.name: i for i in graph.initializer}
    made = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return inits, made, readers


def per_token_activations(src: Path, dst: Path) -> int:
    """Write ``src`` (an int8 ONNX model) with every ``DynamicQuantizeLinear`` and every int8-weight float
    MatMul replaced by per-token quantization (the heads by float) to ``dst``; returns how many activations
    were rewritten (0: nothing to do, ``dst`` is a copy)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits, made, readers = graph_index(graph)
    quantizers = [n for n in graph.node if n.op_type == "DynamicQuantizeLinear"]
    if not quantizers:
        onnx.save(model, str(dst))
        return 0
    if "attention_mask" not in {i.name for i in graph.input}:
        raise ValueError("the model has no attention_mask input; it is not an earful network")

    def constant(name: str, value: np.ndarray) -> str:
        inits[name] = numpy_helper.from_array(value, name)
        graph.initializer.append(inits[name])
        return name

    inv_levels = constant("token_scales_inv_levels", np.array(1 / LEVELS, np.float32))
    # An all-zero row keeps a scale above 0.
    tiny = constant("token_scales_tiny", np.array(np.finfo(np.float32).tiny, np.float32))
    flat = constant("token_scales_flat", np.array([-1], np.int64))
    # A 1.0 computed at run time (every run has a real token): onnxruntime folds a constant one away, and then no
    # longer fuses MatMulInteger → Cast → Mul(1 × channel scales) into one MatMulIntegerToFloat (~10% of a run).
    # Given the row scales as well, that kernel multiplies the bias it fuses by them too (a wrong result), so they
    # are applied after it, before the bias Add.
    one = "token_scales_one"
    first = [
        helper.make_node("ReduceMax", ["attention_mask"], [one + "_mask"], name=one + "_mask", keepdims=0),
        helper.make_node("Cast", [one + "_mask"], [one + "_float"], name=one + "_float", to=TensorProto.FLOAT),
        helper.make_node("Max", [one + "_float", constant(one + "_floor", np.array(1, np.float32))], [one], name=one),
    ]

    # The rows of every [posts, tokens, width] activation are the posts × tokens of attention_mask: their count,
    # zero points and output shapes are made once for the graph instead of once per activation (fewer small nodes
    # per run, which is what a run of one post pays for; docs/quantization.md).
    mask_rows = "token_scales_mask_rows"
    first += [
        helper.make_node("Reshape", ["attention_mask", flat], [mask_rows], name=mask_rows),
        helper.make_node("Shape", [mask_rows], [mask_rows + "_count"], name=mask_rows + "_count"),
        helper.make_node(
            "ConstantOfShape",
            [mask_rows + "_count"],
            [mask_rows + "_zero"],
            name=mask_rows + "_zero",
            value=helper.make_tensor("v", TensorProto.UINT8, [1], [ZERO_POINT]),
        ),
        helper.make_node("Shape", ["attention_mask"], [mask_rows + "_shape"], name=mask_rows + "_shape"),
    ]
    shapes: dict[int, str] = {}

    def token_shape(width: int) -> str:
        """[posts, tokens, width], made once per width."""
        if width not in shapes:
            shapes[width] = name = f"token_scales_shape_{width}"
            first.append(
                helper.make_node(
                    "Concat",
                    [mask_rows + "_shape", constant(name + "_width", np.array([width], np.int64))],
                    [name],
                    name=name,
                    axis=0,
                )
            )
        return shapes[width]

    def quantize_rows(x: str, q: str, scale: str, p: str, width: int, per_token: bool) -> list:
        """Nodes that quantize ``x`` (rows of ``width`` channels) to ``q``, one ``scale`` per row ([..., 1]);
        ``per_token``: ``x`` is [posts, tokens, width], whose rows are attention_mask's."""
        nodes = [
            helper.make_node("Abs", [x], [p + "_abs"], name=p + "_abs"),
            helper.make_node("ReduceMax", [p + "_abs"], [p + "_max"], name=p + "_max", axes=[-1], keepdims=1),
            helper.make_node("Max", [p + "_max", tiny], [p + "_range"], name=p + "_range"),
            helper.make_node("Mul", [p + "_range", inv_levels], [scale], name=p + "_scale"),
            # QuantizeLinear takes one scale per index of one axis: rows flattened to [rows, width], scales to [rows].
            helper.make_node(
                "Reshape", [x, constant(p + "_width", np.array([-1, width], np.int64))], [p + "_rows"], name=p + "_rows"
            ),
            helper.make_node("Reshape", [scale, flat], [p + "_row_scale"], name=p + "_row_scale"),
        ]
        if per_token:
            zero, shape = mask_rows + "_zero", token_shape(width)
        else:
            zero, shape = p + "_row_zero", p + "_shape"
            nodes += [
                helper.make_node("Shape", [p + "_row_scale"], [p + "_count"], name=p + "_count"),
                helper.make_node(
                    "ConstantOfShape",
                    [p + "_count"],
                    [zero],
                    name=zero,
                    value=helper.make_tensor("v", TensorProto.UINT8, [1], [ZERO_POINT]),
                ),
                helper.make_node("Shape", [x], [shape], name=shape),
            ]
        return nodes + [
            helper.make_node(
                "QuantizeLinear",
                [p + "_rows", p + "_row_scale", zero],
                [p + "_quantized"],
                name=p + "_quantize",
                axis=0,
            ),
            helper.make_node("Reshape", [p + "_quantized", shape], [q], name=p + "_unflatten"),
        ]

    inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in inferred if v.type.tensor_type.HasField("shape")}
    replace, follow, drop, replaced = {}, {}, set(), len(quantizers)
    for node in quantizers:
        x, (q, scale, zero_point) = node.input[0], node.output
        matmuls = readers.get(q, [])
        if any(m.op_type != "MatMulInteger" or m.input[1] not in inits for m in matmuls) or not matmuls:
            raise ValueError(f"{node.name}: not the MatMulInteger pattern of onnxruntime's dynamic quantization")
        p = node.name + "_per_token"
        per_post = ranks.get(x) == 2
        for matmul in matmuls:
            [cast] = readers[matmul.output[0]]
            [output] = readers[cast.output[0]]
            scales = made[output.input[1]]
            if (cast.op_type, output.op_type, scales.op_type, scales.input[0]) != ("Cast", "Mul", "Mul", scale):
                raise ValueError(f"{matmul.name}: not the MatMulInteger → Cast → Mul of dynamic quantization")
            if per_post:
                # The heads read the mean over a post's tokens, a sum whose last bit moves with the padding
                # (onnxruntime adds its zeros in another order); quantized again, that bit can move a level and
                # a probability by a few 1e-4. The heads are a sliver of the work: their int8 weights run in float.
                levels, zero = (numpy_helper.to_array(inits[n]).astype(np.float32) for n in matmul.input[1::2])
                weight = constant(
                    matmul.name + "_float_weight",
                    ((levels - zero) * numpy_helper.to_array(inits[scales.input[1]])).astype(np.float32),
                )
                replace[output.name] = [
                    helper.make_node("MatMul", [x, weight], list(output.output), name=matmul.name + "_float")
                ]
                drop |= {matmul.name, cast.name, scales.name}
                continue
            scales.input[0] = one
            scaled = output.output[0]
            output.output[0] = scaled + "_per_channel"
            follow[output.name] = helper.make_node(
                "Mul", [output.output[0], scale], [scaled], name=output.name + "_per_token"
            )
        if per_post:
            drop.add(node.name)
            continue
        constant(zero_point, np.array(ZERO_POINT, np.uint8))  # now one fixed zero point
        replace[node.name] = quantize_rows(x, q, scale, p, inits[matmuls[0].input[1]].dims[0], ranks.get(x) == 3)
    # MatMuls kept out of dynamic quantization (int8 weights before a float MatMul, see export.quantize_int8):
    # with a scale per token an outlier token no longer squeezes the others, and onnxruntime's MatMulNBits,
    # which ran them, cost about 3x an int8 MatMul; they take the per-token path too.
    for dequantize in [
        n
        for n in graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in inits
        and len(inits[n.input[0]].dims) == 2
        and len(readers.get(n.output[0], [])) == 1
    ]:
        [matmul] = readers[dequantize.output[0]]
        if matmul.op_type != "MatMul" or matmul.input[1] != dequantize.output[0]:
            continue
        levels, channel_scale, channel_zero = dequantize.input
        p = matmul.name + "_per_token"
        x, q, scale = matmul.input[0], p + "_quantized_rows", p + "_scale"
        replace[matmul.name] = quantize_rows(x, q, scale, p, inits[levels].dims[0], ranks.get(x) == 3) + [
            helper.make_node(
                "MatMulInteger",
                [q, levels, constant(p + "_zero", np.array(ZERO_POINT, np.uint8)), channel_zero],
                [p + "_int32"],
                name=p + "_matmul",
            ),
            helper.make_node("Cast", [p + "_int32"], [p + "_float"], name=p + "_cast", to=TensorProto.FLOAT),
            helper.make_node("Mul", [one, channel_scale], [p + "_channel_scales"], name=p + "_channel_scales"),
            helper.make_node(
                "Mul", [p + "_float", p + "_channel_scales"], [p + "_per_channel"], name=p + "_per_channel"
            ),
            helper.make_node("Mul", [p + "_per_channel", scale], list(matmul.output), name=p + "_rescale"),
        ]
        drop.add(dequantize.name)
        replaced += 1
    nodes = list(first)
    for node in graph.node:
        if node.name in drop:
            continue
        nodes += replace.get(node.name, [node])
        if node.name in follow:
            nodes.append(follow[node.name])
    del graph.node[:]
    graph.node.extend(nodes)
    read = {name for node in nodes for name in node.input}
    for init in [i for i in graph.initializer if i.name not in read]:  # the heads' int8 weights
        graph.initializer.remove(init)
    onnx.save(model, str(dst))
    return replaced


def _card_with_line(card: str, line: str) -> str:
    """``card`` with ``line`` closing its export parity section (or appended when it has none)."""
    start = card.find("\n## Export parity")
    if start < 0:
        return card.rstrip("\n") + "\n\n" + line + "\n"
    end = card.find("\n## ", start + 1)
    end = len(card) if end < 0 else end
    body = card[:end].rstrip("\n")
    return body + "\n" + line + "\n" + card[end:]


def rewrite_bundle(directory: str | Path, version: str, validation: list[str | Path] | None = None) -> int:
    """Rewrite an existing bundle's int8 model with per-token activation scales, as a new ``version``.

    metrics.json and the model card record the rewrite, and the troll threshold is chosen again on the new int8
    probabilities (:mod:`earful.export.threshold`, on ``validation`` or the validation files training used).
    Written through :func:`earful.export.writer.edit_bundle`, so a failure (no validation rows, say) leaves the
    bundle as it was. Returns how many activations were rewritten."""
    from earful.export.threshold import fit_threshold, record_threshold, training_validation_files
    from earful.export.writer import edit_bundle
    from earful.models.bundle import Bundle

    before = Bundle.load(directory)
    if "int8" not in before.variants:
        raise ValueError(f"bundle {directory} has no int8 model to rewrite")
    with edit_bundle(directory) as writer:
        model = writer.path("model.int8.onnx")
        count = per_token_activations(model, model)
        if not count:
            raise ValueError(f"bundle {directory}: its int8 model already quantizes activations per token")
        parity = writer.read_json("metrics.json").get("export_parity", {})
        parity[METRICS_KEY] = {
            "method": METHOD,
            "activations": count,
            "rewritten_from": f"{before.name} {before.version}",
            "note": "export parity figures were measured on the graph before this rewrite (same weights)",
        }
        writer.update_json("metrics.json", {"export_parity": parity})
        card = writer.read_text("MODEL_CARD.md")
        if card is not None:
            line = (
                f"{CARD_LINE} Rewritten from {before.name} {before.version}'s graph (same weights); the int8 "
                "figure above was measured before."
            )
            writer.write_text("MODEL_CARD.md", _card_with_line(card, line))
        files = list(validation) if validation else training_validation_files(before)
        record_threshold(writer, fit_threshold(writer.seal(), files, "int8"), version)
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rewrite a bundle's int8 model with one activation scale per token.")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--version", required=True, help="the rewritten bundle's version")
    parser.add_argument(
        "--validation",
        nargs="+",
        help="troll-labelled files to choose the troll threshold on (default: the validation files training used)",
    )
    args = parser.parse_args(argv)
    count = rewrite_bundle(args.bundle, args.version, args.validation)
    print(f"{args.bundle}: {count} activations rewritten ({METHOD}); version {args.version}")


if __name__ == "__main__":
    main()
