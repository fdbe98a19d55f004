"""What machine a figure was measured on, and with which tool versions.

Latency figures mean little without the processor behind them: the same artifact is 2× faster on a
Xeon with AMX than on an AVX2-only EPYC, and OpenVINO silently computes in bf16 where the CPU has
bf16 instructions. Every manifest and benchmark report records :func:`machine_info` and
:func:`backend_versions`. Nothing here raises: a fact that cannot be read is left out or ``None``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

# The instruction-set extensions that change which kernels the backends pick.
X86_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "amx_fp16",
)
ARM_FEATURES = ("asimd", "asimddp", "asimdhp", "fphp", "i8mm", "bf16", "sve", "sve2")
X86_ARCHES = ("x86_64", "amd64", "i686", "i386", "x86")

# Distribution names to ask importlib.metadata for, per reported tool; the first one installed wins
# (ONNX Runtime ships as several distributions that import as the same module).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "onnx": ("onnx",),
    "onnxsim": ("onnxsim", "onnx-simplifier"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
    "openvino": ("openvino",),
    "nncf": ("nncf",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-cu13"),
    "cuda-python": ("cuda-python", "cuda-bindings"),
    "numpy": ("numpy",),
}
# Import names for tools installed without package metadata (TensorRT from JetPack's apt packages).
IMPORT_NAMES = {"onnxsim": "onnxsim", "tensorrt": "tensorrt", "cuda-python": "cuda"}

# OpenVINO's element type names → the precision vocabulary edgecv reports in.
_OV_PRECISIONS = {
    "f32": "fp32",
    "float32": "fp32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "f16": "fp16",
    "float16": "fp16",
}


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (Linux), or an empty dict."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if "flags" in info or "Features" in info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def _cpu_model(cpuinfo: dict[str, str]) -> str:
    for key in ("model name", "Model", "Hardware", "cpu model"):
        if cpuinfo.get(key):
            return cpuinfo[key]
    return platform.processor() or platform.machine() or "unknown"


def _cpu_flags(cpuinfo: dict[str, str]) -> list[str]:
    if "flags" in cpuinfo:
        present = set(cpuinfo["flags"].split())
        return [f for f in X86_FLAGS if f in present]
    if "Features" in cpuinfo:
        present = set(cpuinfo["Features"].split())
        return [f for f in ARM_FEATURES if f in present]
    return []


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_cpu_limit() -> float | None:
    """CPUs a container may use (cgroup v2 ``cpu.max``), which ``os.cpu_count`` does not show."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else round(int(quota) / int(period), 2)


def machine_info() -> dict[str, Any]:
    """Processor model and relevant ISA flags, cores, memory, OS and Python."""
    cpuinfo = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(cpuinfo),
        "arch": platform.machine(),
        "flags": _cpu_flags(cpuinfo),
        "cores": {
            "logical": os.cpu_count(),
            "usable": usable,  # the process's CPU affinity: what `taskset`/containers leave us
            "cgroup_limit": _cgroup_cpu_limit(),
        },
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


@lru_cache(maxsize=1)
def cpu_has_vnni() -> bool:
    """Whether this CPU sums 8-bit products without a saturating 16-bit intermediate (x86 VNNI or
    AMX; other architectures have no saturating path in ONNX Runtime's or OpenVINO's kernels)."""
    info = machine_info()
    if info["arch"].lower() not in X86_ARCHES:
        return True
    return any(f in info["flags"] for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def cpu_int8_target() -> str:
    """This machine as an ``--target-cpu`` value: ``x86-vnni``, ``x86-avx2`` or ``arm64``.

    Other architectures (ppc64le, riscv64, s390x) count as ``arm64``: like ARM's SDOT/I8MM they
    have no saturating 8-bit path, so the same full 8-bit weights are right for them."""
    arch = platform.machine().lower()
    if arch in X86_ARCHES:
        return "x86-vnni" if cpu_has_vnni() else "x86-avx2"
    return "arm64"


def _version_of(tool: str) -> str | None:
    for dist in DISTRIBUTIONS.get(tool, (tool,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    module = IMPORT_NAMES.get(tool)
    if module is None or importlib.util.find_spec(module) is None:
        return None
    try:
        return str(getattr(__import__(module), "__version__", "unknown"))
    except Exception:  # a broken install is reported as absent rather than breaking the report
        return None


def backend_versions() -> dict[str, Any]:
    """Versions of Python and every tool edgecv can use, ``None`` for those not installed.

    Read from package metadata, so nothing heavy (torch, nncf) is imported just to be reported.
    """
    from edgecv.version import __version__

    versions: dict[str, Any] = {"edgecv": __version__, "python": sys.version.split()[0]}
    for tool in DISTRIBUTIONS:
        versions[tool] = _version_of(tool)
    return versions


def normalize_ov_precision(value: Any) -> str | None:
    """OpenVINO's ``f32``/``bf16``/``f16`` (a string or an ``ov.Type``) as ``fp32``/``bf16``/``fp16``."""
    if value is None:
        return None
    text = str(value).strip().lower()
    # ov.Type prints as "<Type: 'bfloat16'>"
    if "'" in text:
        text = text.split("'")[1]
    return _OV_PRECISIONS.get(text, text or None)


def openvino_default_precision(device: str = "CPU") -> str | None:
    """The precision OpenVINO computes float layers in on ``device`` without a hint (``bf16`` on CPUs
    with AMX or AVX512-BF16, else ``fp32``), or ``None`` where OpenVINO or the device is absent."""
    if importlib.util.find_spec("openvino") is None:
        return None
    try:
        import openvino as ov

        return normalize_ov_precision(ov.Core().get_property(device, "INFERENCE_PRECISION_HINT"))
    except Exception:  # device missing, property unsupported (NPU): nothing to report
        return None
