"""Timing one loaded runtime: the settings every artifact of a report shares, the inputs (random,
or photographs for a detector), the timed loop and one result.

Inputs follow the model's task, read from its InputSpec (the target's, else the runtime's own,
else the one stamped in the artifact), never from which backend runs it: every artifact of one
benchmark, the PyTorch baseline included, is timed on the same arrays, whose SHA-256 each result
records.

What is timed: ``clock()`` (``time.perf_counter_ns``) right before and right after each call of the
runtime, and nothing else in between: inputs are generated and checked before the loop, and the
loop calls the backend without re-checking them. Warmup calls are not timed, except the very first
one, reported apart as the cold first inference. Statistics: see :mod:`edgecv.runtime.stats`.
Throughput is items per second of timed calls: batch × calls / Σ latencies.

Scenarios (after MLPerf): ``single-stream`` sends one batch (1 by default) at a time and reports the
p90 latency as its headline; ``offline`` sends the largest batch the artifact allows (its fixed
batch, the top of a TensorRT profile, else :data:`OFFLINE_BATCH`) and reports throughput;
``throughput`` keeps several inferences in flight (:mod:`edgecv.runtime.benchmark`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from edgecv.errors import InvalidOptionError
from edgecv.models.spec import InputSpec
from edgecv.records import known_fields

from .base import Runtime
from .stats import LatencyStats

SCENARIOS = ("single-stream", "offline", "throughput")
# Backends whose throughput scenario keeps several inferences in flight (see Runtime.run_concurrently).


DEFAULT_WARMUP = 10


DEFAULT_ITERATIONS = 200


OFFLINE_BATCH = 32


PROGRESS_EVERY_NS = 100_000_000


ProgressFn = Callable[[int, float], None]


@dataclass
class BenchSettings:
    """How to time: the loop's length and the scenario. Shared by every artifact of a report."""

    warmup: int = DEFAULT_WARMUP
    iterations: int | None = None
    duration: float | None = None
    scenario: str = "single-stream"
    seed: int = 0
    # ``1x3x224x224`` (or ``name:1x3x224x224``): the input shape for artifacts that do not fix it.
    shape: str | None = None
    # Throughput scenario: inferences in flight (default: the backend's choice).
    requests: int | None = None

    def __post_init__(self) -> None:
        if self.shape is not None:
            parse_shape(self.shape)
        if self.requests is not None and (
            isinstance(self.requests, bool) or not isinstance(self.requests, int) or self.requests < 1
        ):
            raise InvalidOptionError(f"requests must be an integer ≥ 1, got {self.requests!r}")
        if self.scenario not in SCENARIOS:
            raise InvalidOptionError(f"scenario must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}")
        if self.iterations is not None and self.duration is not None:
            raise InvalidOptionError("give iterations or duration, not both")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise InvalidOptionError(f"warmup must be an integer ≥ 0, got {self.warmup!r}")
        if self.iterations is not None and (not isinstance(self.iterations, int) or self.iterations < 1):
            raise InvalidOptionError(f"iterations must be an integer ≥ 1, got {self.iterations!r}")
        if self.duration is not None and not (self.duration > 0):
            raise InvalidOptionError(f"duration must be a number of seconds > 0, got {self.duration!r}")
        if self.iterations is None and self.duration is None:
            self.iterations = DEFAULT_ITERATIONS


@dataclass
class BenchResult:
    """One artifact at one batch size."""

    artifact: str
    backend: str
    scenario: str
    batch: int
    latency: LatencyStats
    throughput_ips: float
    samples_ms: list[float]
    warmup: int
    path: str | None = None
    device: str | None = None
    precision: str | None = None  # what ran (read back from the backend)
    float_precision: str | None = None  # for INT8 graphs: the precision of the remaining float layers
    artifact_precision: str | None = None  # what the artifact was built as (from the manifest)
    intended_for: str | None = None  # the engine the artifact was made for (from the manifest)
    threads: int | None = None
    load_s: float | None = None  # load + compile: the cold start before the first call
    first_infer_ms: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    size_bytes: int | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)  # INT8 vs FP32, from the manifest
    verification: dict[str, Any] = field(default_factory=dict)  # vs PyTorch, from the manifest
    speedup_vs_torch: float | None = None
    notes: list[str] = field(default_factory=list)
    # Throughput scenario: items/s with several inferences in flight, next to the single-stream figure.
    concurrency: dict[str, Any] = field(default_factory=dict)
    # What was fed: {"kind": "photographs"|"random", "sha256": of the arrays}.
    inputs: dict[str, Any] = field(default_factory=dict)
    # The ONNX file this artifact is, or an engine was built from, by sha256 (see BenchJob).
    source_sha256: str | None = None

    @property
    def headline(self) -> tuple[str, float, str]:
        """(figure, value, unit) the scenario reports first."""
        if self.scenario == "throughput" and self.concurrency:
            return "throughput", self.concurrency["items_per_s"], "items/s"
        if self.scenario == "offline":
            return "throughput", self.throughput_ips, "items/s"
        return "p90", self.latency.p90_ms, "ms"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency"] = self.latency.to_dict()
        d["samples_ms"] = [round(s, 4) for s in self.samples_ms]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BenchResult":
        kw = known_fields(cls, d)
        kw["latency"] = LatencyStats.from_dict(d["latency"])
        return cls(**kw)


def scenario_batch(runtime: Runtime, scenario: str) -> int:
    """The batch a scenario sends when none is asked for."""
    low, high = runtime.batch_range
    if low == high or scenario != "offline":  # throughput: one item per request, several in flight
        return low
    return high if high is not None else max(low, OFFLINE_BATCH)


def parse_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """``"1x3x224x224"`` → ``(None, (1, 3, 224, 224))``; ``"input:1x3x224x224"`` names the input
    (trtexec's ``--shapes``, benchmark_app's ``-shape``; commas work as separators too)."""
    name, _, dims = str(text).strip().rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.replace(",", "x").replace("×", "x").strip("[]() ").split("x"))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise InvalidOptionError(f"--shape takes sizes like 1x3x224x224 (optionally NAME:1x3x224x224), got {text!r}")
    return name or None, shape


def _given_shape(runtime: Runtime, info: Any, shape: str | None) -> tuple[int, ...] | None:
    if shape is None:
        return None
    name, dims = parse_shape(shape)
    if name is None and len(runtime.inputs) > 1:
        raise InvalidOptionError(
            f"{runtime.name} has {len(runtime.inputs)} inputs; name the one --shape is for (NAME:1x3x224x224)"
        )
    if name is not None and name not in {i.name for i in runtime.inputs}:
        raise InvalidOptionError(
            f"--shape names input '{name}'; {runtime.name} has {', '.join(i.name for i in runtime.inputs)}"
        )
    if name is not None and name != info.name:
        return None
    fixed = info.shape
    if fixed is not None and (
        len(fixed) != len(dims)
        or any(isinstance(f, int) and f != d for axis, (f, d) in enumerate(zip(fixed, dims)) if axis > 0)
    ):
        raise InvalidOptionError(
            f"--shape {'x'.join(map(str, dims))} does not fit input '{info.name}' of {runtime.name}, "
            f"which takes {info.describe()}"
        )
    return dims


def shape_batch(shape: str | None) -> int | None:
    """The batch a ``--shape`` asks for (its first dimension)."""
    return None if shape is None else parse_shape(shape)[1][0]


def make_inputs(runtime: Runtime, batch: int, seed: int = 0, shape: str | None = None) -> dict[str, np.ndarray]:
    """Random inputs of the model's shapes at ``batch`` (standard normal: what normalised images
    look like; CNN latency does not depend on the values). ``shape`` (``1x3x224x224``) fills the
    dimensions an artifact leaves open, as trtexec's ``--shapes`` does."""
    rng = np.random.default_rng(seed)
    feed = {}
    for info in runtime.inputs:
        given = _given_shape(runtime, info, shape)
        if info.shape is None and given is None:
            raise InvalidOptionError(
                f"input '{info.name}' of {runtime.name} has no known shape to benchmark with; give it with "
                "--shape, e.g. --shape 1x3x224x224"
            )
        dims = []
        for axis, dim in enumerate(info.shape if info.shape is not None else given):
            if axis == 0:
                dims.append(batch)
            elif isinstance(dim, int):
                dims.append(dim)
            elif given is not None:
                dims.append(given[axis])
            else:
                raise InvalidOptionError(
                    f"input '{info.name}' of {runtime.name} has a dynamic dimension {axis} besides the batch; "
                    "give the size to time with --shape (e.g. --shape 1x3x224x224), or export it with a fixed "
                    "input size"
                )
        if np.issubdtype(info.dtype, np.floating):
            feed[info.name] = rng.standard_normal(dims).astype(info.dtype)
        else:
            feed[info.name] = np.zeros(dims, dtype=info.dtype)
    return feed


PHOTOS_NOTE = (
    "inputs: sample photographs preprocessed with the artifact's input spec, not noise "
    "(a detector's NMS time depends on what the picture holds)"
)


def runtime_input_spec(runtime: Runtime) -> InputSpec | None:
    """The InputSpec a loaded runtime carries (PyTorch), else the one its artifact file is stamped
    with or its run folder's manifest lists."""
    spec = getattr(runtime, "input_spec", None)
    if isinstance(spec, InputSpec):
        return spec
    if runtime.path is not None and runtime.path.is_file():
        from edgecv.artifact_metadata import input_spec_of

        return input_spec_of(runtime.path)
    return None


def _detector_photos(spec: InputSpec | None, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Real pictures for a detector's single image input: random noise gives NMS nothing (or
    everything) to suppress, so its latency would not be the deployed one."""
    from edgecv.preprocess import photo_batch

    if spec is None or spec.task != "detection" or len(feed) != 1:
        return None
    ((name, noise),) = feed.items()
    if noise.ndim != 4 or tuple(noise.shape[1:]) != (spec.channels, spec.height, spec.width):
        return None
    photos = photo_batch(spec.with_batch(1), noise.shape[0])
    return None if photos is None else {name: photos.astype(noise.dtype, copy=False)}


def feed_digest(feed: dict[str, np.ndarray]) -> str:
    """SHA-256 over the inputs' names, shapes, dtypes and bytes: equal digests, equal inputs."""
    digest = hashlib.sha256()
    for name in sorted(feed):
        array = np.ascontiguousarray(feed[name])
        digest.update(f"{name}:{array.shape}:{array.dtype.str};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def benchmark_inputs(
    runtime: Runtime, batch: int, settings: BenchSettings, input_spec: InputSpec | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The prepared feed to time ``runtime`` with at ``batch``, and what it is (kind, sha256).

    ``input_spec`` (the benchmark target's) decides the task; without it the runtime's own."""
    feed = make_inputs(runtime, batch, settings.seed, settings.shape)
    kind = "random"
    photos = _detector_photos(input_spec or runtime_input_spec(runtime), feed)
    if photos is not None:
        feed, kind = photos, "photographs"
    feed = runtime.prepare(feed)
    return feed, {"kind": kind, "sha256": feed_digest(feed)}


def time_calls(
    call: Callable[[], Any],
    settings: BenchSettings,
    *,
    clock: Callable[[], int] = time.perf_counter_ns,
    progress: ProgressFn | None = None,
) -> tuple[list[int], float | None]:
    """Warm up, then time each call with ``clock``; returns (latencies in ns, first call in ms).

    The first warmup call is timed apart with ``perf_counter_ns`` (it pays lazy initialisation);
    the others are not timed. ``clock`` is read exactly twice per timed call.
    """
    first_ms = None
    for i in range(settings.warmup):
        if i == 0:
            start = time.perf_counter_ns()
            call()
            first_ms = (time.perf_counter_ns() - start) / 1e6
        else:
            call()
    samples: list[int] = []
    append = samples.append
    total = settings.iterations
    budget_ns = None if settings.duration is None else int(settings.duration * 1e9)
    loop_start = last_report = None
    while True:
        start = clock()
        call()
        end = clock()
        append(end - start)
        if loop_start is None:
            loop_start = last_report = start
        done = len(samples)
        finished = done >= total if total is not None else end - loop_start >= budget_ns
        if progress is not None and (finished or end - last_report >= PROGRESS_EVERY_NS):
            last_report = end
            progress(done, 1.0 if finished else (done / total if total else (end - loop_start) / budget_ns))
        if finished:
            return samples, first_ms


def measure(
    runtime: Runtime,
    batch: int | None,
    settings: BenchSettings,
    *,
    clock: Callable[[], int] = time.perf_counter_ns,
    progress: ProgressFn | None = None,
    input_spec: InputSpec | None = None,
) -> BenchResult:
    """:func:`benchmark` on a loaded runtime with validated settings; ``input_spec``: the target's,
    which picks the inputs (see the module doc)."""
    if batch is None:
        batch = shape_batch(settings.shape) or scenario_batch(runtime, settings.scenario)
    check_batch_value(batch)
    runtime.check_batch(batch)
    feed, inputs = benchmark_inputs(runtime, batch, settings, input_spec)
    notes = list(runtime.notes)
    if inputs["kind"] == "photographs":
        notes.append(PHOTOS_NOTE)
    infer = runtime.infer

    def call() -> Any:
        return infer(feed, check_inputs=False)

    samples, first_ms = time_calls(call, settings, clock=clock, progress=progress)
    stats = LatencyStats.from_ns(samples)
    return BenchResult(
        artifact=runtime.name,
        backend=runtime.backend,
        scenario=settings.scenario,
        batch=batch,
        latency=stats,
        throughput_ips=batch * len(samples) / (sum(samples) / 1e9) if sum(samples) else float("inf"),
        samples_ms=[s / 1e6 for s in samples],
        warmup=settings.warmup,
        path=str(runtime.path) if runtime.path else None,
        device=runtime.device,
        precision=runtime.precision,
        float_precision=runtime.float_precision,
        threads=runtime.threads,
        load_s=runtime.load_s,
        first_infer_ms=first_ms,
        size_bytes=runtime.size_bytes,
        notes=notes,
        inputs=inputs,
    )


def check_batch_value(batch: Any) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidOptionError(f"batch must be a positive integer, got {batch!r}")
    return batch
