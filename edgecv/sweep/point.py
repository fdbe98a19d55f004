"""One point of a sweep: export → eval → benchmark, as pure functions an executor runs anywhere.

Each function reads and writes only under the directories it is given and takes and returns
picklable values, so the local executor runs it in a worker process and the Ray executor in a task
on another node (its run folder travelling with :func:`pack_dir` / :func:`unpack_dir`).

* :func:`export_point` → :class:`PointExport`: the run folder ``runs_root/<point.run_name>``, reused
  by the export's stage keys; a lock file keeps two exports of one folder from interleaving.
* :func:`eval_point` → ``{artifact: accuracy}`` for the artifacts of the point's precision.
* :func:`benchmark_point` → result rows, one per engine × threads, timed on ``cpus`` when given.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

# The artifact a precision is timed with on each engine: the flavour made for that engine.
ENGINE_ARTIFACTS: dict[tuple[str, str], str] = {
    ("onnxruntime", "fp32"): "onnx-fp32",
    ("onnxruntime", "int8"): "onnx-int8-cpu",
    ("openvino", "fp32"): "openvino-fp32",
    ("openvino", "fp16"): "openvino-fp16",
    ("openvino", "int8"): "openvino-int8",
    ("tensorrt", "fp32"): "tensorrt-fp32",
    ("tensorrt", "fp16"): "tensorrt-fp16",
    ("tensorrt", "int8"): "tensorrt-int8",
}


@dataclass
class Point:
    key: str  # unique in the sweep; the name of its record file
    model: str  # the registry's name
    width_mult: float
    resolution: int | tuple[int, int]
    variant: dict[str, Any]
    precision: str  # fp32 | fp16 | int8
    num_classes: int
    weights: str | None  # None: random weights, timed but never evaluated
    run_name: str  # the run folder, shared by the points of one export
    task: str = "classification"
    export_options: dict[str, Any] = field(default_factory=dict)  # ExportOptions fields, equal within a run folder

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resolution"] = list(self.resolution) if isinstance(self.resolution, tuple) else self.resolution
        d["export_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.export_options.items()}
        return d


@dataclass
class EvalData:
    """Where a sweep's points are evaluated (see ``edgecv eval --data/--images/--limit``)."""

    path: str
    images: str | None = None
    limit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PointExport:
    run_dir: str  # where the export ran; on the driver the folder is ``runs_root/run_name``
    run_name: str
    task: str
    macs: int | None
    params: int | None
    random_weights: bool
    artifacts: list[dict[str, Any]]  # name, backend, precision, intended_for, path (relative to the run folder)
    stages: dict[str, str]  # stage → done | reused
    wall_s: float

    def artifact_for(self, backend: str, precision: str) -> dict[str, Any] | None:
        name = ENGINE_ARTIFACTS.get((backend, precision))
        return next((a for a in self.artifacts if a["name"] == name), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PointExport":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@contextlib.contextmanager
def folder_lock(runs_root: Path, run_name: str) -> Iterator[None]:
    """An exclusive lock on one run folder, held by whichever process exports into it: concurrent
    sweeps (or workers) sharing ``runs_root`` wait for each other instead of interleaving writes."""
    locks = runs_root / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{run_name}.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _complexity(point: Point) -> tuple[int | None, int | None]:
    from edgecv.models.describe import sized_model

    _, c = sized_model(point.model, point.num_classes, point.width_mult, point.resolution, **point.variant)
    return c.macs, c.params


def export_point(point: Point, runs_root: Path) -> PointExport:
    """Export ``point`` into ``runs_root/point.run_name`` (finished stages reused); raises on failure."""
    import warnings

    from edgecv.export.pipeline import export

    runs_root = Path(runs_root)
    start = time.perf_counter()
    with folder_lock(runs_root, point.run_name), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export(point.model, runs_root / point.run_name, **point.export_options)
    m = result.manifest
    macs, params = _complexity(point)
    return PointExport(
        run_dir=str(result.run_dir),
        run_name=point.run_name,
        task=m["model"].get("task", point.task),
        macs=macs,
        params=params,
        random_weights=bool(m["model"].get("random_weights")),
        artifacts=[{k: a[k] for k in ("name", "backend", "precision", "intended_for", "path")} for a in m["artifacts"]],
        stages={k: v["status"] for k, v in m["stages"].items()},
        wall_s=time.perf_counter() - start,
    )


def eval_point(point: Point, run_dir: Path, data: EvalData) -> dict[str, dict[str, Any]]:
    """Accuracy of every artifact of the point's run folder on ``data``, by artifact name (the
    points sharing a run folder share this answer; empty when the point has no weights: random
    weights have no accuracy to measure)."""
    import warnings

    from edgecv.evaluate.loop import evaluate

    if point.weights is None:
        return {}
    backends = list(point.export_options.get("backends") or ()) or None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate(Path(run_dir), data.path, images=data.images, limit=data.limit, backends=backends)
    out = {}
    for r in report.results:
        acc = r.accuracy(report.data, report.conf_thres)
        out[r.artifact] = {k: acc.get(k) for k in ("metric", "value", "images", "data", "delta")}
    return out


def benchmark_point(
    point: Point,
    run_dir: Path,
    backends: Sequence[str],
    threads: Sequence[int | None],
    cpus: Sequence[int] | None = None,
    *,
    iterations: int | None = None,
    warmup: int | None = None,
) -> list[dict[str, Any]]:
    """Time the point's artifact on each engine at each thread count, in this process, pinned to
    ``cpus`` when given. An engine without an artifact of this precision (ONNX Runtime has no FP16
    one) gives no row. Each row: backend, artifact, threads and the benchmark's figures."""
    from edgecv.runfolder import read_manifest
    from edgecv.runtime.benchmark import benchmark_target
    from edgecv.runtime.timing import DEFAULT_WARMUP

    if cpus:
        os.sched_setaffinity(0, set(cpus))
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    by_name = {a["name"]: a for a in manifest["artifacts"]}
    rows: list[dict[str, Any]] = []
    for backend in backends:
        artifact = by_name.get(ENGINE_ARTIFACTS.get((backend, point.precision), ""))
        if artifact is None:
            continue
        for t in threads:
            report = benchmark_target(
                run_dir / artifact["path"],
                iterations=iterations,
                warmup=DEFAULT_WARMUP if warmup is None else warmup,
                threads=t,
                # An FP32 point runs in FP32: OpenVINO would pick bf16 on CPUs with AMX.
                precision="fp32" if (backend, point.precision) == ("openvino", "fp32") else None,
                baseline=False,
                isolate=False,
            )
            for r in report.results:
                lat = r.latency
                rows.append(
                    {
                        "backend": backend,
                        "artifact": artifact["name"],
                        "threads": t,
                        "precision_run": r.precision,
                        "median_ms": lat.median_ms,
                        "p90_ms": lat.p90_ms,
                        "mean_ms": lat.mean_ms,
                        "throughput_ips": r.throughput_ips,
                        "iterations": len(r.samples_ms),
                        "cpus": sorted(cpus) if cpus else None,
                        # The in-process memory caveat is this lane's, not the artifact's.
                        "notes": [n for n in r.notes if not n.startswith("memory:")],
                    }
                )
    return rows


def pack_dir(folder: Path) -> bytes:
    """A folder as one gzip'd tar in memory (a run folder travelling between nodes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(str(folder), arcname=".")
    return buf.getvalue()


def unpack_dir(blob: bytes, dest: Path) -> Path:
    """Unpack :func:`pack_dir`'s bytes into ``dest``, replacing it whole: extracted beside it and
    renamed, so ``dest`` is never a half-unpacked folder."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".unpack-{os.getpid()}-{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(tmp, filter="data")
    old = dest.with_name(f".old-{os.getpid()}-{dest.name}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest
