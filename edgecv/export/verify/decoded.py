"""A detector's decoded boxes and class scores, the tensors its ``decode`` scope hands to its NMS,
exposed as extra outputs of an ONNX or OpenVINO artifact so they can be compared element-wise."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .comparison import DECODED_BOXES, DECODED_SCORES


def decoded_tensors(onnx_path) -> tuple[str, str] | None:
    """The tensors an ONNX detector's ``decode`` scope hands to its ``postprocess`` scope: (decoded
    boxes, class scores); None when the graph does not have exactly those two (a detector not built
    on the contract's scopes)."""
    import onnx

    from edgecv.onnx_graph import OnnxGraph

    model = onnx.load(str(onnx_path), load_external_data=False)
    graph = OnnxGraph(model)
    crossing: list[str] = []
    for node in model.graph.node:
        if not node.name.startswith("/postprocess/"):
            continue
        for tensor in node.input:
            source = graph.producer.get(tensor)
            # Constants folded into the decode scope are not what it computes.
            decoded = source is not None and source.op_type != "Constant" and source.name.startswith("/decode/")
            if decoded and tensor not in crossing:
                crossing.append(tensor)
    nms = next((n for n in model.graph.node if n.op_type == "NonMaxSuppression"), None)
    if len(crossing) != 2 or nms is None or nms.input[0] not in crossing:
        return None
    # The boxes are the crossing tensor NMS reads as its first input; the other holds the scores.
    return nms.input[0], next(t for t in crossing if t != nms.input[0])


def onnx_decoded_outputs(
    path, batches: Sequence[np.ndarray], names: tuple[str, str]
) -> list[dict[str, np.ndarray]] | None:
    """Run an ONNX detector with its :func:`decoded_tensors` exposed as outputs, returned under
    ``names`` per batch; None without such tensors."""
    import onnx
    import onnxruntime as ort

    exposed = decoded_tensors(path)
    if exposed is None:
        return None
    model = onnx.load(str(path))
    known = {o.name for o in model.graph.output}
    for tensor in exposed:
        if tensor not in known:
            model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed_name = session.get_inputs()[0].name
    return [dict(zip(names, session.run(list(exposed), {feed_name: b}))) for b in batches]


def openvino_decoded_outputs(
    xml, onnx_path, batches: Sequence[np.ndarray], names: tuple[str, str], precision: str | None = None
) -> list[dict[str, np.ndarray]] | None:
    """Run an OpenVINO IR converted from the detector ``onnx_path`` with its :func:`decoded_tensors`
    (the IR keeps the ONNX tensor names) exposed as outputs, at inference ``precision`` (OpenVINO's
    hint: ``f32``, ``bf16``); None without such tensors."""
    import openvino as ov

    exposed = decoded_tensors(onnx_path)
    if exposed is None:
        return None
    core = ov.Core()
    model = core.read_model(str(xml))
    model.add_outputs(list(exposed))
    config = {"INFERENCE_PRECISION_HINT": precision} if precision else {}
    compiled = core.compile_model(model, "CPU", config)
    ports = [compiled.output(t) for t in exposed]
    request = compiled.create_infer_request()
    results = []
    for b in batches:
        out = request.infer({0: b})
        results.append({name: np.array(out[port]) for name, port in zip(names, ports)})
    return results


def decoded_outputs(
    artifact, backend: str, batches: Sequence[np.ndarray], *, onnx_path, precision: str | None = None
) -> list[dict[str, np.ndarray]] | None:
    """An artifact's decoded boxes and class scores (the tensors before its NMS) per batch, under the
    reference's keys, where its backend can expose them (ONNX Runtime, OpenVINO); else None."""
    names = (DECODED_BOXES, DECODED_SCORES)
    if backend == "onnxruntime":
        return onnx_decoded_outputs(artifact, batches, names)
    if backend == "openvino":
        return openvino_decoded_outputs(artifact, onnx_path, batches, names, precision)
    return None
