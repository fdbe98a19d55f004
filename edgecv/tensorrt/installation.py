"""Facts about a TensorRT installation and the GPU it builds for, shared by the builder
(:mod:`edgecv.tensorrt.build`), the runtime (:mod:`edgecv.runtime.tensorrt`) and the deploy tools.

Nothing here imports TensorRT, PyTorch, ONNX Runtime or OpenVINO; the GPU is asked through CUDA
(cuda-python), not ``nvidia-smi``, which Jetson boards do not have.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgecv.errors import InvalidOptionError

# What to check and build for when no TensorRT is installed here: JetPack 6.x, the Jetson Orin default.
DEFAULT_TRT_VERSION = "10.3"
NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
# L4T major release → JetPack series (NVIDIA's JetPack archive): R35 = JetPack 5, R36 = JetPack 6, R38 = JetPack 7.
JETPACK_SERIES = {32: "4.x", 35: "5.x", 36: "6.x", 38: "7.x"}


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3"`` / ``"10.3.0.26"`` / ``"v100300"`` → ``(10, 3)`` / ``(10, 3, 0, 26)`` / ``(10, 3, 0)``."""
    text = str(text).strip()
    packed = re.fullmatch(r"v?(\d{4,6})", text)
    if packed:  # trtexec's [TensorRT vNNNN]: MAJOR*1000+MINOR*100+PATCH (8.x), MAJOR*10000+… (10+)
        n = int(packed.group(1))
        if n >= 100000:
            return (n // 10000, n // 100 % 100, n % 100)
        return (n // 1000, n // 100 % 10, n % 100)
    if not re.fullmatch(r"\d+(\.\d+)*", text):
        raise InvalidOptionError(f"not a TensorRT version: {text!r} (expected e.g. 10.3 or 11.1)")
    return tuple(int(p) for p in text.split("."))


def same_release(a: str, b: str) -> bool:
    """Whether two TensorRT versions are the same release (major.minor.patch; the build number aside).

    TensorRT's documentation: a plan only deserializes under the TensorRT version that built it
    (unless built version-compatible, which edgecv does not do)."""
    return parse_version(a)[:3] == parse_version(b)[:3]


def cuda_runtime_module():
    """cuda-python's runtime bindings (``cuda.bindings.runtime`` from 12.6 on, ``cuda.cudart`` before)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart  # type: ignore[no-redef]
    return cudart


def cuda_gpu(index: int = 0) -> dict[str, Any] | None:
    """Name and compute capability of CUDA device ``index`` through cuda-python, or ``None`` where
    cuda-python, the driver or the device is missing."""
    try:
        cudart = cuda_runtime_module()
    except ImportError:
        return None
    ok = cudart.cudaError_t.cudaSuccess
    try:
        err, count = cudart.cudaGetDeviceCount()
        if err != ok or count <= index:
            return None
        err, props = cudart.cudaGetDeviceProperties(index)
        if err != ok:
            return None
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        info: dict[str, Any] = {"gpu": name.rstrip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}
        err, driver = cudart.cudaDriverGetVersion()
        if err == ok:
            info["cuda_driver"] = f"{driver // 1000}.{driver % 1000 // 10}"
        return info
    except Exception:  # a broken driver is reported as "no GPU", never as a crash
        return None


def jetson_release(path: Path = NV_TEGRA_RELEASE) -> dict[str, str] | None:
    """The L4T release of a Jetson board (``/etc/nv_tegra_release``) and its JetPack series, or ``None``.

    The file's first line reads like ``# R36 (release), REVISION: 4.3, GCID: …, BOARD: generic, …``."""
    try:
        line = path.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", line)
    if not match:
        return {"nv_tegra_release": line.strip()}
    major = int(match.group(1))
    return {
        "l4t": f"{major}.{match.group(2)}",
        "jetpack": JETPACK_SERIES.get(major, "unknown"),
        "nv_tegra_release": line.strip(),
    }


def platform_description(index: int = 0) -> dict[str, Any]:
    """What a sidecar records about the machine that built an engine."""
    info: dict[str, Any] = cuda_gpu(index) or {"gpu": None, "compute_capability": None}
    jetson = jetson_release()
    if jetson:
        info["jetson"] = jetson
    return info


def plan_mismatch(sidecar: dict[str, Any], trt_version: str, gpu: dict[str, Any] | None) -> str | None:
    """Why a plan described by ``sidecar`` cannot run here, or ``None`` if nothing says it cannot."""
    built_trt = sidecar.get("tensorrt")
    built_cc = sidecar.get("compute_capability")
    here_cc = (gpu or {}).get("compute_capability")
    reasons = []
    if built_trt and not same_release(built_trt, trt_version):
        reasons.append(f"TensorRT {built_trt} (this machine has {trt_version})")
    if built_cc and here_cc and built_cc != here_cc:
        reasons.append(
            f"{sidecar.get('gpu') or 'a GPU'} of compute capability {built_cc} "
            f"(this machine has {gpu.get('gpu')}, {here_cc})"
        )
    if not reasons:
        return None
    return "built for " + " and ".join(reasons)
