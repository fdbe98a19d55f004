"""What the CPU at hand does to 8-bit integer arithmetic, and the settings that keep INT8 exact on it.

x86 CPUs without VNNI (AVX2 only) multiply unsigned by signed bytes with ``vpmaddubsw``, which adds
pairs of products into a *saturating* 16-bit integer. With full 8-bit weights and activations the
sum overflows. Measured on an AVX2-only EPYC (MobileNetV2 α 0.35 trained on digits, output SQNR
against FP32): ONNX Runtime's default handling of signed-activation Q/DQ graphs (it turns them into
U8×S8) fell from 21.6 dB to 7.8 dB and lost 9 points of accuracy; NNCF's OpenVINO INT8 with its
default overflow fix (first layer only) gave 9.6 dB, with the fix on every layer 22.2 dB. VNNI
(``vpdpbusd``) and AMX accumulate in 32 bits and need none of this.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import onnx


@lru_cache(maxsize=1)
def cpu_has_vnni() -> bool:
    """Whether the CPU multiplies 8-bit integers without the saturating 16-bit intermediate sum
    (x86 VNNI or AMX; other architectures have no saturating path in these libraries)."""
    from edgecv.sysinfo import machine_info

    info = machine_info()
    if info["arch"] not in ("x86_64", "AMD64", "i686", "i386"):
        return True
    return any(f in info["flags"] for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def has_signed_activations(model: str | Path | bytes | onnx.ModelProto) -> bool:
    """Whether a Q/DQ graph quantizes some activation (not an initializer) to INT8."""
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, bytes):
        proto = onnx.load_from_string(model)
    else:
        proto = onnx.load(str(model), load_external_data=False)
    graph = proto.graph
    initializers = {i.name: i for i in graph.initializer}
    constants = {o: n for n in graph.node if n.op_type == "Constant" for o in n.output}
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in initializers or len(node.input) < 3:
            continue
        zero_point = initializers.get(node.input[2])
        if zero_point is not None and zero_point.data_type == onnx.TensorProto.INT8:
            return True
        const = constants.get(node.input[2])
        if const is not None and const.attribute and const.attribute[0].t.data_type == onnx.TensorProto.INT8:
            return True
    return False


def onnxruntime_int8_config(model: str | Path | bytes | onnx.ModelProto) -> dict[str, str]:
    """ONNX Runtime session config entries for ``model`` on this CPU.

    On x86 ONNX Runtime rewrites signed-activation Q/DQ (the TensorRT flavour) to U8×S8 kernels
    unless told that INT8 is allowed; without VNNI that rewrite saturates. ``qdqisint8allowed``
    keeps the S8×S8 kernels, which compute the graph as written."""
    if cpu_has_vnni() or not has_signed_activations(model):
        return {}
    return {"session.qdqisint8allowed": "1"}


def configure_onnxruntime(options, model: str | Path | bytes | onnx.ModelProto) -> bool:
    """Add :func:`onnxruntime_int8_config`'s entries to ``options`` (an ``ort.SessionOptions``);
    True when there were any."""
    config = onnxruntime_int8_config(model)
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    return bool(config)


def nncf_overflow_fix() -> str:
    """NNCF's ``overflow_fix`` for an OpenVINO INT8 model built to run on this CPU: ``enable``
    (7-bit weights in every layer) without VNNI, else NNCF's default ``first_layer_only``."""
    return "first_layer_only" if cpu_has_vnni() else "enable"
