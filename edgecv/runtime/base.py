"""The :class:`Runtime` interface every backend implements.

A template method, as in Polygraphy's runners: the base class owns the state (loaded, closed), the
input checks and the timing of the load; a backend writes only ``_load_impl``, ``_infer_impl`` and
``_close_impl``. So every backend rejects a wrong shape or dtype with the same message, before the
array reaches a backend that would answer with a C++ traceback or, worse, read past the buffer.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence, Union

import numpy as np

from edgecv.errors import ArtifactError, InputMismatchError, InvalidOptionError

if TYPE_CHECKING:  # pragma: no cover
    from edgecv.models.spec import InputSpec

# A dimension: a size, or None / a symbolic name (e.g. "batch") where the model takes any size.
Dim = Union[int, str, None]

# edgecv's precision vocabulary (fp32, fp16, bf16, int8), and the spellings users and backends use
# for them. int8 names an artifact's precision; no backend takes it as a compute hint.
PRECISION_ALIASES = {
    "fp32": "fp32",
    "f32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "fp16": "fp16",
    "f16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "int8": "int8",
    "i8": "int8",
}


def normalize_precision(value: str | None) -> str | None:
    """``f32``/``float32``/``fp32`` → ``fp32`` and so on; :class:`InvalidOptionError` for others."""
    if value is None:
        return None
    key = str(value).strip().lower()
    if key not in PRECISION_ALIASES:
        raise InvalidOptionError(f"unknown precision {value!r}; use one of fp32, bf16, fp16, int8")
    return PRECISION_ALIASES[key]


def _dim_text(d: Dim) -> str:
    if isinstance(d, int):
        return str(d)
    return d if isinstance(d, str) and d else "?"


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of a model input or output.

    ``shape`` holds ints for fixed dimensions and ``None`` or a symbolic name for dynamic ones;
    ``shape`` itself is ``None`` where the backend cannot know it before a call (PyTorch outputs).
    ``min_shape``/``max_shape`` bound the dynamic dimensions where the engine has limits
    (TensorRT optimization profiles).
    """

    name: str
    shape: tuple[Dim, ...] | None
    dtype: np.dtype
    min_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None

    @property
    def is_dynamic(self) -> bool:
        return self.shape is None or any(not isinstance(d, int) for d in self.shape)

    def describe(self) -> str:
        shape = "[?]" if self.shape is None else "[" + ", ".join(_dim_text(d) for d in self.shape) + "]"
        return f"{shape} {np.dtype(self.dtype).name}"

    def mismatch(self, array: np.ndarray) -> str | None:
        """Every reason ``array`` cannot be fed as this input (joined by ``; ``), or ``None`` if it can."""
        problems = []
        if array.dtype != self.dtype:
            problems.append(f"dtype {array.dtype.name}, not {np.dtype(self.dtype).name}")
        if self.shape is not None:
            if array.ndim != len(self.shape):
                problems.append(f"rank {array.ndim}, not {len(self.shape)}")
            else:
                for axis, (want, got) in enumerate(zip(self.shape, array.shape)):
                    if isinstance(want, int) and want != got:
                        problems.append(f"dimension {axis} is {got}, not {want}")
                    elif self.min_shape is not None and got < self.min_shape[axis]:
                        problems.append(f"dimension {axis} is below the engine's minimum {self.min_shape[axis]}")
                    elif self.max_shape is not None and got > self.max_shape[axis]:
                        problems.append(f"dimension {axis} is above the engine's maximum {self.max_shape[axis]}")
            problems += self._hints(array)
        return "; ".join(problems) or None

    def _hints(self, array: np.ndarray) -> list[str]:
        """What the usual mistakes look like: a channels-last picture, raw 0..255 pixels."""
        hints = []
        shape = self.shape or ()
        if len(shape) == 4 and array.ndim == 4 and isinstance(shape[1], int):
            channels = shape[1]
            if array.shape[3] == channels and array.shape[1] != channels:
                hints.append(
                    "the array looks channels-last (NHWC) and the model takes NCHW: "
                    "transpose it with .transpose(0, 3, 1, 2)"
                )
        elif len(shape) == 4 and array.ndim == 3 and isinstance(shape[1], int) and array.shape[0] == shape[1]:
            hints.append("one image without its batch axis: add it with array[None]")
        if array.dtype == np.uint8 and np.dtype(self.dtype).kind == "f":
            hints.append(
                "raw 0..255 pixels: normalise them as the export did (edgecv.preprocess.preprocess(image, input_spec))"
            )
        return hints

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": None if self.shape is None else list(self.shape),
            "dtype": np.dtype(self.dtype).name,
            **({"min_shape": list(self.min_shape)} if self.min_shape else {}),
            **({"max_shape": list(self.max_shape)} if self.max_shape else {}),
        }


def require_file(source: Any, suffixes: Sequence[str]) -> Path:
    """``source`` as an existing file path with one of ``suffixes``, or :class:`ArtifactError`."""
    if not isinstance(source, (str, Path)):
        raise ArtifactError(f"expected a path to a {'/'.join(suffixes)} file, got {type(source).__name__}")
    path = Path(source).expanduser()
    if not path.exists():
        raise ArtifactError(f"{path} does not exist")
    if not path.is_file():
        raise ArtifactError(f"{path} is not a file")
    if path.suffix.lower() not in suffixes:
        raise ArtifactError(f"{path} is not a {'/'.join(suffixes)} file")
    return path


def first_line(exc: BaseException) -> str:
    """The first line of a backend's (often multi-line, C++-flavoured) error message."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


class Runtime(abc.ABC):
    """A loaded model that runs NumPy arrays. Use as a context manager or call :meth:`close`.

    Attributes set by every backend: ``backend``, ``path`` (``None`` for in-memory models),
    ``name``, ``device``, ``threads`` (``None`` means the backend's default), ``precision`` (what
    actually runs: for OpenVINO read back from the compiled model, so ``bf16`` on CPUs where
    OpenVINO picks it), ``inputs``/``outputs`` (:class:`TensorInfo`), ``load_s`` (load + compile),
    ``input_spec`` (the :class:`~edgecv.models.spec.InputSpec` where the backend holds one, as
    PyTorch's models do; ``None`` elsewhere, where the artifact's stamped metadata says it).
    """

    backend: ClassVar[str]
    #: Keyword options ``_load_impl`` takes besides the common ones; ``None``: it checks them itself.
    options: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(
        self,
        source: Any,
        *,
        device: str | None = None,
        threads: int | None = None,
        precision: str | None = None,
        **options: Any,
    ):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InvalidOptionError(f"threads must be a positive integer, got {threads!r}")
        if self.options is not None:
            unknown = sorted(set(options) - self.options)
            if unknown:
                known = ", ".join(sorted(self.options)) or "none"
                raise InvalidOptionError(f"{self.backend} takes no option {', '.join(unknown)} (options: {known})")
        self.path: Path | None = None
        self.name: str = str(source)
        self.device: str | None = device
        self.threads: int | None = threads
        self.precision: str | None = None
        # Where quantized layers run in int8 and the rest in float: the float layers' precision.
        self.float_precision: str | None = None
        # What a reader of a benchmark should know about how this backend was set up.
        self.notes: list[str] = []
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []
        self.input_spec: InputSpec | None = None
        self._closed = True
        start = time.perf_counter()
        self._load_impl(source, normalize_precision(precision), **options)
        self.load_s = time.perf_counter() - start
        self._closed = False

    # --- what a backend implements ---------------------------------------------------------------

    @abc.abstractmethod
    def _load_impl(self, source: Any, precision: str | None, **options: Any) -> None:
        """Load and compile; set ``path``, ``name``, ``device``, ``precision``, ``inputs``, ``outputs``."""

    @abc.abstractmethod
    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one call on checked, C-contiguous inputs; return every output by name."""

    def _close_impl(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release backend resources (device memory, sessions)."""

    # --- throughput: several inferences in flight -----------------------------------------------

    def max_concurrency(self) -> int:
        """How many inferences to keep in flight for throughput: the usable cores, unless the backend
        knows better (OpenVINO's optimal number of infer requests)."""
        from edgecv.sysinfo import machine_info

        return max(1, int((machine_info().get("cores") or {}).get("usable") or 1))

    def run_concurrently(
        self, feed: dict[str, np.ndarray], requests: int, calls: int | None = None, duration_s: float | None = None
    ) -> tuple[int, float]:
        """Keep ``requests`` calls of a prepared ``feed`` in flight until ``calls`` have finished (or
        ``duration_s`` has passed); returns (calls finished, wall seconds). One Python thread per
        request: the backends release the GIL while they compute, and a session may be run from
        several threads at once."""
        import threading

        if calls is None and duration_s is None:
            raise InvalidOptionError("run_concurrently needs calls or duration_s")
        lock = threading.Lock()
        state = {"started": 0, "done": 0}
        errors: list[BaseException] = []
        deadline = None if duration_s is None else time.perf_counter() + duration_s

        def worker() -> None:
            while not errors:
                with lock:
                    if (calls is not None and state["started"] >= calls) or (
                        deadline is not None and time.perf_counter() >= deadline
                    ):
                        return
                    state["started"] += 1
                try:
                    self._infer_impl(feed)
                except BaseException as exc:  # re-raised in the caller's thread below
                    errors.append(exc)
                    return
                with lock:
                    state["done"] += 1

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, requests))]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        if errors:
            raise errors[0]
        return state["done"], wall

    # --- the interface ---------------------------------------------------------------------------

    def prepare(self, feed: np.ndarray | Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Check ``feed`` against :attr:`inputs` and return it as a dict of C-contiguous arrays.

        A single array is fed to the single input. A wrong name, shape or dtype raises
        :class:`InputMismatchError` naming what was given and what the model takes; nothing is
        cast or reshaped behind the caller's back.
        """
        if not isinstance(feed, Mapping):
            if len(self.inputs) != 1:
                names = ", ".join(i.name for i in self.inputs)
                raise InputMismatchError(
                    f"{self.name} has {len(self.inputs)} inputs ({names}); pass a dict of arrays by name"
                )
            feed = {self.inputs[0].name: feed}
        expected = {i.name: i for i in self.inputs}
        missing = [n for n in expected if n not in feed]
        extra = [n for n in feed if n not in expected]
        if missing or extra:
            raise InputMismatchError(
                f"{self.name} takes inputs {', '.join(expected)}; "
                + "; ".join(
                    filter(
                        None,
                        [
                            f"missing {', '.join(missing)}" if missing else "",
                            f"unknown {', '.join(map(str, extra))}" if extra else "",
                        ],
                    )
                )
            )
        prepared = {}
        for name, info in expected.items():
            array = feed[name]
            if not isinstance(array, np.ndarray):
                array = np.asarray(array)
            problem = info.mismatch(array)
            if problem is not None:
                got = f"[{', '.join(map(str, array.shape))}] {array.dtype.name}"
                raise InputMismatchError(
                    f"input '{name}' of {self.name}: got {got}, the model takes {info.describe()}: {problem}"
                )
            prepared[name] = np.ascontiguousarray(array)
        return prepared

    def infer(self, feed: np.ndarray | Mapping[str, Any], *, check_inputs: bool = True) -> dict[str, np.ndarray]:
        """Run the model. ``check_inputs=False`` skips :meth:`prepare` for a feed it already returned
        (the benchmark loop does this so it times the backend call alone)."""
        if self._closed:
            raise RuntimeError(f"{self.backend} runtime for {self.name} is closed")
        if check_inputs:
            feed = self.prepare(feed)
        return self._infer_impl(feed)  # type: ignore[arg-type]

    __call__ = infer

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_impl()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def batch_range(self) -> tuple[int, int | None]:
        """Batch sizes (the first dimension of every input) the model takes: ``(min, max)``;
        ``max`` is ``None`` where any batch goes. A static model gives ``(b, b)``."""
        low, high = 1, None
        for info in self.inputs:
            if not info.shape:
                continue
            first = info.shape[0]
            if isinstance(first, int):
                return first, first
            if info.min_shape:
                low = max(low, info.min_shape[0])
            if info.max_shape:
                high = info.max_shape[0] if high is None else min(high, info.max_shape[0])
        return low, high

    def check_batch(self, batch: int) -> None:
        """:class:`InputMismatchError` unless the model takes ``batch``."""
        low, high = self.batch_range
        if batch < low or (high is not None and batch > high):
            takes = f"only batch {low}" if low == high else f"batch {low} to {high if high is not None else '∞'}"
            raise InputMismatchError(
                f"{self.name} takes {takes}, asked for batch {batch}"
                + (" (export with --dynamic-batch to sweep batch sizes)" if low == high else "")
            )

    def files(self) -> list[Path]:
        """The files the artifact consists of (OpenVINO adds its ``.bin``)."""
        return [self.path] if self.path is not None and self.path.is_file() else []

    @property
    def size_bytes(self) -> int | None:
        files = self.files()
        return sum(f.stat().st_size for f in files) if files else None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "device": self.device,
            "threads": self.threads,
            "precision": self.precision,
            "float_precision": self.float_precision,
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
            "load_s": self.load_s,
            "size_bytes": self.size_bytes,
        }

    def _require_fixed_precision(self, requested: str | None) -> None:
        """Backends whose precision the artifact fixes: a different request is an error, not a hint."""
        if requested is not None and requested != self.precision:
            raise InvalidOptionError(
                f"{self.backend} runs {self.name} in {self.precision or 'the precision it was built in'}; "
                f"precision {requested} cannot be chosen at load time (only OpenVINO takes a precision hint)"
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.name} on {self.device} ({self.precision}), {state}>"
