"""ONNX → TensorRT engine (``tensorrt/model.<precision>.engine`` + a ``.json`` sidecar).

TensorRT versions ask for precision differently (see shared FACTS): TensorRT 10 takes builder flags
(FP16, INT8 for explicit Q/DQ graphs); TensorRT 11 removed them and builds strongly typed networks,
so an FP16 engine comes from an FP16 ONNX and an INT8 engine from the Q/DQ ONNX as it is. Metadata
goes to a sidecar file: bytes prepended to an engine break trtexec, DeepStream and Triton.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgecv.errors import BackendUnavailableError, StageError

WORKSPACE_BYTES = 2 << 30
MAX_DYNAMIC_BATCH = 32


def require_tensorrt():
    """Import TensorRT or explain what is missing (exit code 2 in the CLI)."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailableError(
            "tensorrt", "edgecv[tensorrt]",
            "the TensorRT Python package is not installed (on Jetson it comes with JetPack, not pip)",
        ) from None
    if shutil.which("nvidia-smi") is None and not Path("/dev/nvhost-ctrl").exists():
        raise BackendUnavailableError("tensorrt", None, "no NVIDIA GPU or driver found on this machine")
    return trt


def trt_major(trt) -> int:
    return int(trt.__version__.split(".")[0])


def gpu_description() -> dict[str, Any]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip().splitlines()[0]
        name, cc, driver = (x.strip() for x in out.split(","))
        return {"gpu": name, "compute_capability": cc, "driver": driver}
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return {"gpu": "unknown (no nvidia-smi; Jetson?)"}


def to_fp16_onnx(src: Path, dst: Path) -> None:
    """Strongly typed TensorRT (11+) builds FP16 only from an FP16 graph; keep I/O in float32 so the
    engine's interface matches the FP32 one."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    *,
    precision: str,
    input_name: str,
    input_shape: tuple[int, ...],
    dynamic_batch: bool,
    workspace_bytes: int = WORKSPACE_BYTES,
) -> dict[str, Any]:
    """Build and serialize an engine; returns the sidecar's content."""
    trt = require_tensorrt()
    major = trt_major(trt)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = major >= 11
    source = onnx_path
    if strongly_typed and precision == "fp16":
        source = engine_path.with_suffix(".fp16.onnx")
        to_fp16_onnx(onnx_path, source)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise StageError("tensorrt", f"TensorRT's ONNX parser rejected {source.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if not strongly_typed:
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            # Explicit quantization: scales come from the Q/DQ nodes, no calibrator.
            config.set_flag(trt.BuilderFlag.INT8)
    profile_shapes = None
    if dynamic_batch:
        c, h, w = input_shape[1:]
        profile = builder.create_optimization_profile()
        profile_shapes = {"min": (1, c, h, w), "opt": (1, c, h, w), "max": (MAX_DYNAMIC_BATCH, c, h, w)}
        profile.set_shape(input_name, *profile_shapes.values())
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StageError("tensorrt", f"TensorRT could not build a {precision} engine from {source.name}")
    engine_path.write_bytes(bytes(serialized))
    if source != onnx_path:
        source.unlink(missing_ok=True)
    return {
        "tensorrt": trt.__version__,
        "precision": precision,
        "strongly_typed": strongly_typed,
        "source_onnx": onnx_path.name,
        "input": input_name,
        "input_shape": list(input_shape),
        "profile": {k: list(v) for k, v in profile_shapes.items()} if profile_shapes else None,
        **gpu_description(),
        "note": "engines only run on the GPU model and TensorRT version that built them",
    }


def write_sidecar(engine_path: Path, info: dict[str, Any]) -> None:
    engine_path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
