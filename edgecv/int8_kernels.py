"""What a CPU does to 8-bit integer arithmetic, the settings that keep INT8 exact on it, and the CPU an
INT8 artifact is built for (``edgecv export --target-cpu``).

x86 CPUs without VNNI (AVX2 only) multiply unsigned by signed bytes with ``vpmaddubsw``, which adds
pairs of products into a *saturating* 16-bit integer. With full 8-bit weights and activations the
sum overflows. Measured on an AVX2-only EPYC (MobileNetV2 α 0.35 trained on digits, output SQNR
against FP32): ONNX Runtime's default handling of signed-activation Q/DQ graphs (it turns them into
U8×S8) fell from 21.6 dB to 7.8 dB and lost 9 points of accuracy; NNCF's OpenVINO INT8 with its
default overflow fix (first layer only) gave 9.6 dB, with the fix on every layer 22.2 dB. VNNI
(``vpdpbusd``) and AMX accumulate in 32 bits and need none of this.

Two artifacts are shaped by that: the ONNX Runtime CPU flavour (7-bit weights, ORT's
``reduce_range``) and the OpenVINO INT8 IR (NNCF's ``overflow_fix``). Edge artifacts are built on one
machine and run on another, so the export takes the target CPU as an option and stamps it into
those artifacts; the benchmark compares it with the CPU it runs on. The TensorRT flavour does not
depend on it (signed symmetric 8 bits, and on x86 ONNX Runtime is told at load time to keep its
S8×S8 kernels, see :func:`onnxruntime_int8_config`).

Imports only ``edgecv.sysinfo``, ``edgecv.errors`` and ``onnx``: every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from edgecv.errors import InvalidOptionError
from edgecv.onnx_graph import OnnxGraph
from edgecv.sysinfo import cpu_has_vnni, cpu_int8_target, machine_info


@dataclass(frozen=True)
class CpuTarget:
    name: str
    # 8-bit products summed in saturating 16-bit integers: full 8-bit weights can overflow.
    saturates: bool
    # NNCF's overflow_fix for the OpenVINO INT8 IR built for this target.
    overflow_fix: str
    description: str

    @property
    def reduce_range(self) -> bool:
        """7-bit weights in ONNX Runtime's CPU flavour."""
        return self.saturates


TARGETS: dict[str, CpuTarget] = {
    t.name: t
    for t in (
        # NNCF's own default (7-bit weights in the first layer only) is kept where it was measured;
        # VNNI itself would need no fix at all.
        CpuTarget(
            "x86-vnni",
            False,
            "first_layer_only",
            "x86 with AVX-512 VNNI, AVX-VNNI or AMX: 32-bit accumulation, full 8-bit weights",
        ),
        CpuTarget("x86-avx2", True, "enable", "x86 without VNNI: saturating 16-bit sums, 7-bit weights everywhere"),
        # ARM64 (assumed, not measured here): ONNX Runtime's MLAS and OpenVINO's ARM plugin (ACL)
        # multiply 8-bit values with SDOT/UDOT or I8MM, which accumulate in 32 bits, or fall back
        # to float; neither has the x86 saturating path, so full 8-bit weights everywhere and no
        # overflow fix. U8 activations / S8 weights stay: MLAS runs them on ARM64 as well.
        CpuTarget("arm64", False, "disable", "ARM64 (SDOT/I8MM): 32-bit accumulation, full 8-bit weights"),
    )
}
TARGET_CPUS = ("auto", *TARGETS)


def target_cpu(name: str) -> CpuTarget:
    """The target named ``name``; ``auto`` is this machine's CPU."""
    if name == "auto":
        return TARGETS[cpu_int8_target()]
    try:
        return TARGETS[name]
    except KeyError:
        raise InvalidOptionError(f"--target-cpu must be one of {', '.join(TARGET_CPUS)}, got {name!r}") from None


def describe_target(name: str) -> str:
    """One line for the export's output: ``INT8 built for x86-vnni (this machine's CPU: AMD EPYC …)``."""
    target = target_cpu(name)
    if name == "auto":
        return f"INT8 built for {target.name} (this machine's CPU: {machine_info()['cpu']})"
    return f"INT8 built for {target.name} (--target-cpu; this machine is {cpu_int8_target()})"


def mismatch_note(artifact: str, built_for: str, running_on: str | None = None) -> str | None:
    """What running an artifact built for ``built_for`` on ``running_on`` (default: this CPU) costs,
    or ``None`` when they match."""
    running_on = running_on or cpu_int8_target()
    if built_for == running_on or built_for not in TARGETS or running_on not in TARGETS:
        return None
    built, running = TARGETS[built_for], TARGETS[running_on]
    if running.saturates and not built.saturates:
        return (
            f"{artifact}: INT8 built for {built_for}, running on {running_on}: this CPU sums 8-bit products "
            f"in saturating 16-bit integers and the artifact's full 8-bit weights can overflow them "
            f"(accuracy risk: on an AVX2-only EPYC a digits model's OpenVINO INT8 fell from 22 to 10 dB SQNR this way); rebuild with --target-cpu {running_on}"
        )
    if built.saturates and not running.saturates:
        return (
            f"{artifact}: INT8 built for {built_for}, running on {running_on}: its 7-bit weights, needed only "
            f"without VNNI, cost a little accuracy here; rebuild with --target-cpu {running_on} for full 8 bits"
        )
    return f"{artifact}: INT8 built for {built_for}, running on {running_on} (neither saturates: no accuracy risk)"


def artifact_target_note(label: str, path: str | Path, record: dict | None = None) -> str | None:
    """:func:`mismatch_note` for the artifact at ``path``: the target its metadata carries, else its
    manifest record's (``extra.target_cpu``); ``None`` for artifacts that carry none."""
    from edgecv.artifact_metadata import PREFIX, read_metadata

    built_for = read_metadata(path).get(f"{PREFIX}target_cpu") or ((record or {}).get("extra") or {}).get("target_cpu")
    return mismatch_note(label, built_for) if built_for else None


def has_signed_activations(model: str | Path | bytes | onnx.ModelProto) -> bool:
    """Whether a Q/DQ graph quantizes some activation (not an initializer) to INT8."""
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, bytes):
        proto = onnx.load_from_string(model)
    else:
        proto = onnx.load(str(model), load_external_data=False)
    graph = OnnxGraph(proto)
    return any(
        node.op_type == "QuantizeLinear"
        and node.input[0] not in graph.initializers
        and len(node.input) >= 3
        and graph.elem_type(node.input[2]) == onnx.TensorProto.INT8
        for node in graph.nodes
    )


def onnxruntime_int8_config(model: str | Path | bytes | onnx.ModelProto) -> dict[str, str]:
    """ONNX Runtime session config entries for ``model`` on this CPU (the one that runs it).

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
