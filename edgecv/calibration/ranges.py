"""Activation ranges for ONNX quantization: computed once per (model, data, method), shared by every
INT8 flavour, and cached as JSON in the run folder.

ONNX Runtime's calibrators keep every intermediate output of every input they are fed before they
reduce them (about 50 MB per 224×224 MobileNetV2 input: 15 GB for 300 inputs). Feeding them in
chunks bounds that: their ``collect_data`` merges each chunk into running min/max or histograms.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator
from onnxruntime.quantization.calibrate import TensorsData, load_tensors_data, save_tensors_data

from edgecv.errors import InvalidOptionError

CALIB_METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
# Inputs whose intermediate outputs the calibrator holds at once (~50 MB each at 224×224).
DEFAULT_CHUNK = 16
RANGES_SCHEMA = "edgecv.ranges/1"

Progress = Callable[[str, int, "int | None"], None]


class SampleReader(CalibrationDataReader):
    """ONNX Runtime reader over a sequence of (C, H, W) tensors, batched, preprocessing lazily."""

    def __init__(self, samples: Sequence[np.ndarray], input_name: str, batch_size: int = 1):
        self.samples = samples
        self.input_name = input_name
        self.batch_size = batch_size
        self.set_range(0, len(samples))

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self.samples))

    def __len__(self) -> int:
        return len(self.samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        n = len(self.samples)
        # A fixed batch dimension takes no short batch: wrap around (repeats change no range).
        idx = [(self._next + k) % n for k in range(self.batch_size)]
        self._next += self.batch_size
        return {self.input_name: np.stack([self.samples[i] for i in idx])}


def method_of(name: str) -> CalibrationMethod:
    try:
        return CALIB_METHODS[name]
    except KeyError:
        raise InvalidOptionError(
            f"calibration method must be one of {', '.join(CALIB_METHODS)}, got {name!r}"
        ) from None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def compute_ranges(
    model_path: str | Path,
    samples: Sequence[np.ndarray],
    input_name: str,
    method: str,
    *,
    batch_size: int = 1,
    chunk: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> TensorsData:
    """Run ONNX Runtime's calibrator for ``method`` over ``samples`` ``chunk`` inputs at a time."""
    reader = SampleReader(samples, input_name, batch_size)
    total = len(samples)
    step = max(batch_size, chunk - chunk % batch_size)
    with tempfile.TemporaryDirectory(prefix="edgecv-calib-") as tmp, _quiet():
        calibrator = create_calibrator(
            Path(model_path),
            augmented_model_path=os.path.join(tmp, "augmented.onnx"),
            calibrate_method=method_of(method),
            extra_options={},
        )
        for start in range(0, total, step):
            reader.set_range(start, start + step)
            calibrator.collect_data(reader)
            if progress is not None:
                progress("calibrating", min(start + step, total), total)
        return calibrator.compute_data()


@contextlib.contextmanager
def _quiet():
    # ORT's histogram collector prints progress to stdout, which must stay clean for `--json`.
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def ranges_key(model_sha256: str, data_fingerprint: str, method: str, extra: dict[str, Any] | None = None) -> str:
    payload = {"model": model_sha256, "data": data_fingerprint, "method": method, **(extra or {})}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def read_cached(cache_path: Path, key: str) -> TensorsData | None:
    """The ranges stored at ``cache_path`` if they were computed for ``key``; None otherwise (also
    when the file is unreadable: a cache only saves time)."""
    meta_path = cache_path.with_suffix(".meta.json")
    if not cache_path.is_file() or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("schema") != RANGES_SCHEMA or meta.get("key") != key:
            return None
        return load_tensors_data(cache_path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_cache(cache_path: Path, key: str, ranges: TensorsData, meta: dict[str, Any]) -> None:
    """Write the ranges in ONNX Runtime's own cache format (so ``quantize_static`` and other ORT tools
    read them) and a small sidecar naming what they were computed from. The sidecar goes last and is
    what marks the pair valid, so an interrupted write is a cache miss, never wrong ranges."""
    meta_path = cache_path.with_suffix(".meta.json")
    meta_path.unlink(missing_ok=True)
    save_tensors_data(ranges, cache_path)  # atomic (temporary file + rename)
    payload = {"schema": RANGES_SCHEMA, "key": key, "ranges_sha256": sha256_file(cache_path), **meta}
    tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, meta_path)


def cached_ranges(
    model_path: str | Path,
    samples: Sequence[np.ndarray],
    input_name: str,
    method: str,
    *,
    data_fingerprint: str,
    cache_path: str | Path | None,
    batch_size: int = 1,
    chunk: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> tuple[TensorsData, dict[str, Any]]:
    """Ranges for ``model_path`` from the cache when its key matches, else computed (and cached).

    Returns the ranges and facts for the report: whether the cache was used, the key, the time."""
    model_sha = sha256_file(model_path)
    key = ranges_key(model_sha, data_fingerprint, method, {"batch": batch_size})
    info: dict[str, Any] = {"method": method, "key": key, "inputs": len(samples)}
    if cache_path is not None:
        cache_path = Path(cache_path)
        info["cache"] = str(cache_path)
        hit = read_cached(cache_path, key)
        if hit is not None:
            return hit, {**info, "reused": True, "wall_s": 0.0}
    start = time.perf_counter()
    ranges = compute_ranges(
        model_path, samples, input_name, method, batch_size=batch_size, chunk=chunk, progress=progress
    )
    info.update(reused=False, wall_s=round(time.perf_counter() - start, 3), tensors=len(ranges.data))
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        write_cache(
            cache_path, key, ranges,
            {"method": method, "model_sha256": model_sha, "data_fingerprint": data_fingerprint, "inputs": len(samples)},
        )
    return ranges, info
