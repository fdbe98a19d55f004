"""FP16 copies of a run folder's ONNX files, which strongly typed TensorRT builds read: precision comes
from the graph there, so an FP16 engine needs an FP16 graph (float32 inputs and outputs kept, so the
engine's interface matches the FP32 one), and a fast INT8 engine a Q/DQ graph whose float parts are
FP16. Used by the export's TensorRT stage and by the Jetson bundle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecv.errors import BackendUnavailableError, StageError
from edgecv.runfolder import FP16_ONNX, INT8_FP16_ONNX, INT8_ONNX, ONNX

# Each FP16 copy → the run folder's file it is made from.
COPY_OF = {FP16_ONNX: ONNX, INT8_FP16_ONNX: INT8_ONNX}
# ONNX QuantizeLinear/DequantizeLinear take FP16 scales from opset 19 on (ONNX operator spec).
FP16_QDQ_OPSET = 19


def write_fp16_copy(src: Path, dst: Path) -> dict[str, Any]:
    """An FP16 copy of ``src`` with float32 inputs and outputs (so the engine's interface matches the
    FP32 one). A Q/DQ graph is first raised to opset 19, where Q/DQ take FP16 scales, so its
    DequantizeLinear nodes yield FP16 [TRT docs: "output data type is inferred from scale data type"
    in strongly typed networks, NvInfer.h IDequantizeLayer]."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(src))
    qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if qdq and opset < FP16_QDQ_OPSET:
        model = version_converter.convert_version(model, FP16_QDQ_OPSET)
    try:
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    except ImportError:
        raise BackendUnavailableError(
            "tensorrt", "onnxruntime", "writing the FP16 ONNX copy uses onnxruntime.transformers.float16"
        ) from None
    # ORT's default block list keeps NMS, TopK, RoiAlign, Range, CumSum, Min/Max in float32, with
    # casts around them: box arithmetic and thresholds stay in float32, as the design asks.
    _constants_as_initializers(model.graph)
    _private_float32_inputs(model.graph, set(DEFAULT_OP_BLOCK_LIST))
    fp16 = convert_float_to_float16(model, keep_io_types=True)
    _sort_topologically(fp16.graph)  # the converter appends its input casts after their consumers
    _restamp(fp16, qdq)
    onnx.checker.check_model(fp16)
    onnx.save(fp16, str(dst))
    return {"source": src.name, "opset": max(opset, FP16_QDQ_OPSET) if qdq else opset, "qdq": qdq}


def _constants_as_initializers(graph) -> None:
    """Turn top-level Constant nodes into initializers. The converter rewrites every Constant to FP16
    and casts it back for the float32 ops it keeps, so an NMS threshold would become a Cast computed
    at run time, which TensorRT's NMS layer refuses; an initializer read only by float32 ops it
    leaves in float32, as the quantizer's graphs (initializers throughout) already get."""
    from onnx import numpy_helper

    moved = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.output) == 1:
            value = _constant_value(node)
            if value is not None:
                moved[node.output[0]] = numpy_helper.from_array(value, node.output[0])
    if not moved:
        return
    kept = [n for n in graph.node if not (n.op_type == "Constant" and n.output and n.output[0] in moved)]
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(moved.values())
    # A stale FLOAT value_info would make the converter cast the initializer to FP16 and back.
    infos = [v for v in graph.value_info if v.name not in moved]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def _constant_value(node):
    import numpy as np
    from onnx import numpy_helper

    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, np.float32)
        if attr.name == "value_floats":
            return np.array(attr.floats, np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, np.int64)
        if attr.name == "value_ints":
            return np.array(attr.ints, np.int64)
    return None  # sparse or string constants: left as they are


def _private_float32_inputs(graph, float32_ops: set[str]) -> None:
    """Give each op the converter keeps in float32 its own copy of a float initializer it shares with
    ops that go to FP16: a shared one is converted and cast back, no longer a build-time constant."""
    from onnx import TensorProto

    floats = {t.name: t for t in graph.initializer if t.data_type == TensorProto.FLOAT}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in set(node.input) & floats.keys():
            readers.setdefault(name, []).append(node)
    for name, nodes in readers.items():
        kept = [n for n in nodes if n.op_type in float32_ops]
        if not kept or len(kept) == len(nodes):
            continue
        copy = graph.initializer.add()
        copy.CopyFrom(floats[name])
        copy.name = f"{name}_float32"
        for node in kept:
            for i, value in enumerate(node.input):
                if value == name:
                    node.input[i] = copy.name


def _restamp(model, qdq: bool) -> None:
    """The copy inherits its source's edgecv keys; it is the FP16 (or FP16-float INT8) graph made for
    TensorRT, and says so, so `edgecv check` and the runtime read it for what it is."""
    from edgecv.artifact_metadata import PREFIX

    stamped = {f"{PREFIX}precision": "int8" if qdq else "fp16", f"{PREFIX}intended_for": "tensorrt"}
    if not any(p.key.startswith(PREFIX) for p in model.metadata_props):
        return  # not an edgecv artifact: nothing to correct
    for prop in model.metadata_props:
        if prop.key in stamped:
            prop.value = stamped.pop(prop.key)
    for key, value in stamped.items():
        model.metadata_props.add(key=key, value=value)


def _sort_topologically(graph) -> None:
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise StageError("tensorrt", "the FP16 copy has a cycle or a dangling input")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)
