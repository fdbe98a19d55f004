"""Activation ranges for ONNX quantization: computed once per (model, data, method), shared by every
INT8 flavour, and cached as JSON in the run folder.

ONNX Runtime's calibrators keep every intermediate output of every input they are fed before they
reduce them (about 50 MB per 224×224 MobileNetV2 input: 15 GB for 300 inputs) and run the graph
unoptimised. Here each batch is reduced into running statistics as soon as it has run, with ONNX
Runtime's own range algorithms, so memory stays at one batch's activations.
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
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
from onnxruntime.quantization.calibrate import TensorsData, load_tensors_data, save_tensors_data

from edgecv.errors import InvalidOptionError
from edgecv.progress import StepProgress as Progress
from edgecv.runfolder import sha256_file, write_json_atomic

CALIB_METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
# The best output SQNR of the three in both flavours on MobileNetV2 1.0/224 and on a MobileNetV2
# trained on digits: 0.1–0.4 dB over min/max and entropy (benchmarks/calibration_methods.py
# measures it), for about twice min/max's calibration time.
DEFAULT_METHOD = "percentile"
# Values per tensor and input that go into the histograms of entropy and percentile calibration.
DEFAULT_SAMPLES_PER_TENSOR = 1 << 13
# Inputs whose subsamples are histogrammed together (ONNX Runtime merges histograms per call).
DEFAULT_CHUNK = 16
RANGES_SCHEMA = "edgecv.ranges/1"


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


class RangeStatistics:
    """Running statistics of every calibrated tensor, reduced as the data streams by, so memory
    stays at a few inputs' activations whatever the size of the calibration set.

    MinMax keeps exact extremes. Entropy and percentile feed ONNX Runtime's own
    ``HistogramCollector`` (the thresholds ``quantize_static`` would pick) with each tensor
    subsampled to about ``samples_per_tensor`` values per input plus its exact minimum and maximum,
    ``chunk`` inputs per call: histogramming every value (13 M per 224×224 MobileNetV2 input) took
    0.3 s per input."""

    def __init__(
        self,
        method: str,
        *,
        samples_per_tensor: int = DEFAULT_SAMPLES_PER_TENSOR,
        chunk: int = DEFAULT_CHUNK,
        seed: int = 0,
    ):
        self.method = method
        self.calibration_method = method_of(method)
        self.samples_per_tensor = samples_per_tensor
        self.chunk = chunk
        self._rng = np.random.default_rng(seed)
        self._minmax: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._pending: dict[str, list[np.ndarray]] = {}
        self._pending_inputs = 0
        self._collector = None
        if method != "minmax":
            from onnxruntime.quantization.calibrate import HistogramCollector

            # ONNX Runtime's defaults for each method (those of its create_calibrator).
            settings = {
                "entropy": {"symmetric": False, "num_bins": 128},
                "percentile": {"symmetric": True, "num_bins": 2048},
            }[method]
            self._collector = HistogramCollector(
                method=method, num_quantized_bins=128, percentile=99.999, scenario="same", **settings
            )

    def update(self, outputs: dict[str, np.ndarray]) -> None:
        # A detector's NMS outputs are empty for a picture with no detection (they stay in float
        # and need no range); neither min/max nor ORT's histograms take an empty tensor.
        outputs = {name: value for name, value in outputs.items() if value.size}
        if self._collector is None:
            for name, value in outputs.items():
                lo, hi = value.min(), value.max()
                if name in self._minmax:
                    old_lo, old_hi = self._minmax[name]
                    lo, hi = min(lo, old_lo), max(hi, old_hi)
                self._minmax[name] = (lo, hi)
            return
        for name, value in outputs.items():
            self._pending.setdefault(name, []).append(self._subsample(value))
        self._pending_inputs += 1
        if self._pending_inputs >= self.chunk:
            self._flush()

    def _subsample(self, value: np.ndarray) -> np.ndarray:
        flat = value.reshape(-1)
        if flat.size <= self.samples_per_tensor:
            return flat.copy()  # ORT reuses output buffers between runs
        # Every stride-th value from a random start: random gathers over a tensor this size cost
        # several times more (cache misses) for the same statistics.
        stride = flat.size // self.samples_per_tensor
        picked = flat[int(self._rng.integers(stride)) :: stride]
        return np.concatenate([picked, [flat.min(), flat.max()]])

    def _flush(self) -> None:
        if self._pending_inputs:
            batch = {k: np.concatenate(v) for k, v in self._pending.items()}
            if self.method == "percentile":
                batch = {k: _histogrammable(v, self._collector.num_bins) for k, v in batch.items()}
            with _quiet():
                self._collector.collect(batch)
        self._pending, self._pending_inputs = {}, 0

    def result(self) -> TensorsData:
        if self._collector is None:
            if not self._minmax:
                raise ValueError("no calibration data was seen")
            data = {k: (np.float32(lo), np.float32(hi)) for k, (lo, hi) in self._minmax.items()}
            return TensorsData(self.calibration_method, data)
        self._flush()
        with _quiet():
            return TensorsData(self.calibration_method, self._collector.compute_collection_result())


def _histogrammable(values: np.ndarray, num_bins: int) -> np.ndarray:
    """``values`` with a zero added where ORT's percentile collector could not histogram them.

    Its first histogram of a tensor spans the tensor's own |values|; one that barely varies (the
    objectness of an untrained detector: |x| from 4.59198 to 4.59215) holds fewer float32 steps
    than bins and numpy refuses ("Too many bins for data range"), failing the whole export. With a
    zero the first bins span 0..max (later batches are binned into the first bins, extended
    upwards only)."""
    a = np.abs(values)
    if a.size == 0:
        return values
    lo, hi = a.min(), a.max()
    if hi > lo and hi - lo < num_bins * np.spacing(hi):
        return np.append(values, values.dtype.type(0))
    return values


def augmented_session(model_path: str | Path, workdir: str | Path, threads: int | None = None):
    """An ONNX Runtime session of ``model_path`` that also outputs every tensor to calibrate.

    ONNX Runtime's calibrator picks and exposes the tensors (so the names match what its quantizer
    looks up); the session is ours, with graph optimisations on: they do not fuse away a tensor that
    is a graph output, and they make each calibration run about a third faster."""
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import HistogramCalibrater

    augmented = Path(workdir) / "augmented.onnx"
    calibrater = HistogramCalibrater(Path(model_path), augmented_model_path=str(augmented))
    calibrater.augment_graph()
    names = sorted(calibrater.tensors_to_calibrate)
    del calibrater
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"]), names


def compute_ranges(
    model_path: str | Path,
    samples: Sequence[np.ndarray],
    input_name: str,
    method: str,
    *,
    batch_size: int = 1,
    samples_per_tensor: int = DEFAULT_SAMPLES_PER_TENSOR,
    progress: Progress | None = None,
) -> TensorsData:
    """Activation ranges of every tensor of ``model_path`` over ``samples`` by ``method``, one pass."""
    stats = RangeStatistics(method, samples_per_tensor=samples_per_tensor)
    reader = SampleReader(samples, input_name, batch_size)
    total = len(samples)
    with tempfile.TemporaryDirectory(prefix="edgecv-calib-") as tmp:
        session, names = augmented_session(model_path, tmp)
        done = 0
        while (feed := reader.get_next()) is not None:
            stats.update(dict(zip(names, session.run(names, feed))))
            done = min(done + batch_size, total)
            if progress is not None:
                progress("calibrating", done, total)
    return stats.result()


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
        if meta.get("ranges_sha256") != sha256_file(cache_path):
            return None  # edited or half-replaced since
        return load_tensors_data(cache_path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _default_file_mode() -> int:
    """The mode ``open()`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_cache(cache_path: Path, key: str, ranges: TensorsData, meta: dict[str, Any]) -> None:
    """Write the ranges in ONNX Runtime's own cache format (so ``quantize_static`` and other ORT tools
    read them) and a small sidecar naming what they were computed from. The sidecar goes last and is
    what marks the pair valid, so an interrupted write is a cache miss, never wrong ranges."""
    meta_path = cache_path.with_suffix(".meta.json")
    meta_path.unlink(missing_ok=True)
    save_tensors_data(ranges, cache_path)  # atomic (temporary file + rename)
    cache_path.chmod(_default_file_mode())  # its temporary file was private (mkstemp); the run folder's are not
    write_json_atomic(
        meta_path, {"schema": RANGES_SCHEMA, "key": key, "ranges_sha256": sha256_file(cache_path), **meta}
    )


def cached_ranges(
    model_path: str | Path,
    samples: Sequence[np.ndarray],
    input_name: str,
    method: str,
    *,
    data_fingerprint: str,
    cache_path: str | Path | None,
    batch_size: int = 1,
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
    ranges = compute_ranges(model_path, samples, input_name, method, batch_size=batch_size, progress=progress)
    info.update(reused=False, wall_s=round(time.perf_counter() - start, 3), tensors=len(ranges.data))
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        write_cache(
            cache_path,
            key,
            ranges,
            {"method": method, "model_sha256": model_sha, "data_fingerprint": data_fingerprint, "inputs": len(samples)},
        )
    return ranges, info
