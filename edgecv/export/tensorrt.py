"""ONNX → TensorRT engine (``tensorrt/model.<precision>.engine`` + a ``.json`` sidecar), one build
path for TensorRT 10 and 11.

Precision comes from the graph, not from builder flags: the network is strongly typed (an opt-in
creation flag on 10.x, the only mode on 11), so

* an FP32 engine is built from ``model.onnx``;
* an FP16 engine from an FP16 copy of it (``model.fp16.onnx``, float32 inputs and outputs kept);
* an INT8 engine from the Q/DQ graph with its float parts in FP16 (``model.int8.fp16.onnx``: the
  Q/DQ scales in FP16, so each DequantizeLinear yields FP16), because an INT8 engine whose
  non-quantized layers run in FP32 is often slower than an FP16 one.

TensorRT 10's weakly typed builder flags (``BuilderFlag.FP16``/``INT8`` on the FP32 or Q/DQ graph)
are used only when asked for (``weak_typing=True``), and never on 11, which removed them.

Facts from TensorRT's documentation are marked ``[TRT docs]`` below; the sources are ``NvInfer.h``
and the Python bindings (``python/src/infer/pyCore.cpp``) of TensorRT 10.3 and 11.1, and the
developer guide. Metadata goes to a sidecar file: bytes prepended to a plan break trtexec,
DeepStream and Triton.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecv.errors import BackendUnavailableError, InvalidOptionError, StageError
from edgecv.runfolder import FP16_ONNX, INT8_FP16_ONNX, INT8_ONNX, ONNX, sha256_file
from edgecv.runfolder import TIMING_CACHE as _RUN_TIMING_CACHE
from edgecv.tensorrt_info import parse_version, platform_description

WORKSPACE_BYTES = 2 << 30
MAX_DYNAMIC_BATCH = 32
PRECISIONS = ("fp32", "fp16", "int8")
TIMING_CACHE = Path(_RUN_TIMING_CACHE).name  # in a run folder it lies in tensorrt/
# ONNX QuantizeLinear/DequantizeLinear take FP16 scales from opset 19 on (ONNX operator spec).
FP16_QDQ_OPSET = 19


def require_tensorrt():
    """Import TensorRT (≥ 10) or explain what is missing (exit code 2 in the CLI)."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailableError(
            "tensorrt",
            "edgecv[tensorrt]",
            "the TensorRT Python package is not installed (on Jetson it comes with JetPack, not pip)",
        ) from None
    if parse_version(trt.__version__)[0] < 10:
        raise BackendUnavailableError(
            "tensorrt", None, f"TensorRT {trt.__version__} found; edgecv builds with TensorRT 10 or 11"
        )
    from edgecv.tensorrt_info import cuda_gpu

    if cuda_gpu() is None:
        raise BackendUnavailableError(
            "tensorrt", "cuda-python", "no CUDA device found through cuda-python (driver or GPU missing)"
        )
    return trt


def trt_major(trt) -> int:
    return parse_version(trt.__version__)[0]


def gpu_description() -> dict[str, Any]:
    """The GPU (through CUDA) and, on a Jetson, the L4T/JetPack release."""
    return platform_description()


@dataclass(frozen=True)
class Recipe:
    """How one engine is asked of one TensorRT version: which ONNX, which network and builder flags."""

    trt_version: str
    precision: str
    source: str  # ONNX file name in the run folder
    strongly_typed: bool
    network_flags: tuple[str, ...] = ()  # NetworkDefinitionCreationFlag members
    builder_flags: tuple[str, ...] = ()  # BuilderFlag members
    dla_core: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def engine_recipe(
    trt_version: str, precision: str, *, weak_typing: bool = False, dla_core: int | None = None
) -> Recipe:
    """The build recipe for ``precision`` on ``trt_version`` (pure: no TensorRT needed)."""
    if precision not in PRECISIONS:
        raise InvalidOptionError(f"TensorRT precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    major = parse_version(trt_version)[0]
    if major < 10:
        raise InvalidOptionError(f"TensorRT {trt_version}: edgecv builds with TensorRT 10 or 11")
    if dla_core is not None:
        if dla_core < 0:
            raise InvalidOptionError(f"--dla-core must be ≥ 0, got {dla_core}")
        if precision == "fp32":
            # [TRT docs] DLA runs FP16 and INT8 layers only.
            raise InvalidOptionError("DLA runs FP16 or INT8 engines, not FP32 (add --fp16 or --int8)")
    # [TRT docs] GPU_FALLBACK lets layers DLA cannot run go to the GPU instead of failing the build.
    dla_flags = ("GPU_FALLBACK",) if dla_core is not None else ()
    if weak_typing:
        if major >= 11:
            # [TRT docs] TensorRT 11 removed BuilderFlag.FP16/INT8 and implicit precision selection.
            raise InvalidOptionError("--trt-weak-typing is for TensorRT 10.x; TensorRT 11 builds strongly typed only")
        flags = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]
        source = INT8_ONNX if precision == "int8" else ONNX
        return Recipe(
            trt_version,
            precision,
            source,
            strongly_typed=False,
            builder_flags=flags + dla_flags,
            dla_core=dla_core,
            notes=("weakly typed (deprecated since TensorRT 10.12): TensorRT picks layer precisions",),
        )
    source = {"fp32": ONNX, "fp16": FP16_ONNX, "int8": INT8_FP16_ONNX}[precision]
    # [TRT docs] 10.x: strongly typed is opt-in (NetworkDefinitionCreationFlag.STRONGLY_TYPED);
    # 11: always on, the flag deprecated and ignored, so it is not passed.
    network_flags = ("STRONGLY_TYPED",) if major == 10 else ()
    return Recipe(
        trt_version,
        precision,
        source,
        strongly_typed=True,
        network_flags=network_flags,
        builder_flags=dla_flags,
        dla_core=dla_core,
    )


# --- FP16 copies -----------------------------------------------------------------------------------


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


# --- the build -------------------------------------------------------------------------------------


def _enum(trt, enum_name: str, member: str):
    try:
        return getattr(getattr(trt, enum_name), member)
    except AttributeError:
        raise StageError(
            "tensorrt", f"TensorRT {trt.__version__} has no {enum_name}.{member}; this recipe is for another version"
        ) from None


def _load_timing_cache(trt, config, path: Path | None, logger_note: list[str]):
    blob = b""
    if path is not None and path.is_file():
        blob = path.read_bytes()
    cache = config.create_timing_cache(blob)
    # ignore_mismatch=False [TRT docs]: a cache from another GPU is refused rather than misused.
    if not config.set_timing_cache(cache, False):
        logger_note.append(f"timing cache {path} is for another GPU or TensorRT; starting a new one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    elif blob:
        logger_note.append(f"timing cache reused: {path}")
    return cache


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    *,
    precision: str,
    input_name: str,
    input_shape: tuple[int, ...],
    dynamic_batch: bool,
    max_batch: int = MAX_DYNAMIC_BATCH,
    opt_batch: int | None = None,
    workspace_bytes: int = WORKSPACE_BYTES,
    weak_typing: bool = False,
    dla_core: int | None = None,
    timing_cache: Path | None = None,
    recipe: Recipe | None = None,
) -> dict[str, Any]:
    """Build ``onnx_path`` (already the recipe's source graph) into ``engine_path``; returns the
    sidecar's content. The plan is written exactly as TensorRT serialized it."""
    trt = require_tensorrt()
    recipe = recipe or engine_recipe(trt.__version__, precision, weak_typing=weak_typing, dla_core=dla_core)
    if dynamic_batch and not 1 <= (opt_batch or 1) <= max_batch:
        raise InvalidOptionError(f"the optimisation profile needs 1 ≤ opt ({opt_batch}) ≤ max batch ({max_batch})")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    for name in recipe.network_flags:
        flags |= 1 << int(_enum(trt, "NetworkDefinitionCreationFlag", name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise StageError("tensorrt", f"TensorRT's ONNX parser rejected {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    for name in recipe.builder_flags:
        config.set_flag(_enum(trt, "BuilderFlag", name))
    if recipe.dla_core is not None:
        available = int(builder.num_DLA_cores)
        if recipe.dla_core >= available:
            raise InvalidOptionError(f"--dla-core {recipe.dla_core}: this device has {available} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(recipe.dla_core)
    profile_shapes = None
    if dynamic_batch:
        rest = tuple(int(d) for d in input_shape[1:])
        opt = int(opt_batch or 1)
        profile_shapes = {"min": (1, *rest), "opt": (opt, *rest), "max": (int(max_batch), *rest)}
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, profile_shapes["min"], profile_shapes["opt"], profile_shapes["max"])
        config.add_optimization_profile(profile)
    notes: list[str] = list(recipe.notes)
    cache = _load_timing_cache(trt, config, timing_cache, notes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        detail = "; ".join(getattr(logger, "messages", [])[-3:])
        raise StageError(
            "tensorrt",
            f"TensorRT could not build a {precision} engine from {onnx_path.name}"
            + (f": {detail}" if detail else " (see TensorRT's log above)"),
        )
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    if timing_cache is not None:
        tmp = timing_cache.with_name(f"{timing_cache.name}.tmp{os.getpid()}")
        tmp.write_bytes(bytes(cache.serialize()))
        os.replace(tmp, timing_cache)
    return {
        "tensorrt": trt.__version__,
        "precision": precision,
        "strongly_typed": recipe.strongly_typed,
        "network_flags": list(recipe.network_flags),
        "builder_flags": list(recipe.builder_flags),
        "source_onnx": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        "input": input_name,
        "input_shape": list(input_shape),
        "profile": {k: list(v) for k, v in profile_shapes.items()} if profile_shapes else None,
        "workspace_bytes": int(workspace_bytes),
        "dla_core": recipe.dla_core,
        "timing_cache": timing_cache.name if timing_cache is not None else None,
        **gpu_description(),
        "notes": notes,
        "note": "engines only run on the GPU model and TensorRT version that built them",
    }


def write_sidecar(engine_path: Path, info: dict[str, Any]) -> None:
    engine_path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
