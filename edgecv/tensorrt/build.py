"""ONNX → TensorRT engine (``tensorrt/model.<precision>.engine`` + a ``.json`` sidecar), one build
path for TensorRT 10 and 11.

Precision comes from the graph, not from builder flags: the network is strongly typed (an opt-in
creation flag on 10.x, the only mode on 11), so

* an FP32 engine is built from ``model.onnx``;
* an FP16 engine from an FP16 copy of it (``model.fp16.onnx``, float32 inputs and outputs kept);
* an INT8 engine from the Q/DQ graph with its float parts in FP16 (``model.int8.fp16.onnx``: the
  Q/DQ scales in FP16, so each DequantizeLinear yields FP16), because an INT8 engine whose
  non-quantized layers run in FP32 is often slower than an FP16 one.

Both FP16 copies are written by :mod:`.fp16`.

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
from edgecv.tensorrt.installation import cuda_gpu, parse_version, platform_description

WORKSPACE_BYTES = 2 << 30
MAX_DYNAMIC_BATCH = 32
PRECISIONS = ("fp32", "fp16", "int8")
TIMING_CACHE = Path(_RUN_TIMING_CACHE).name  # in a run folder it lies in tensorrt/


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
    if cuda_gpu() is None:
        raise BackendUnavailableError(
            "tensorrt", "cuda-python", "no CUDA device found through cuda-python (driver or GPU missing)"
        )
    return trt


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
