"""Calibration data: pick a deterministic sample of inputs, hold some out for the fidelity report,
and hand them to the quantizers lazily.

    calib = load_calibration("photos/", model.input_spec, size=300, seed=0)
    calib.report.to_dict()        # counts, skipped files and why, warnings
    for batch in calib.calibration.batches(1): ...
    calib.fingerprint             # content hash of the chosen inputs and options (cache key)
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import CalibrationDataError
from edgecv.models.spec import InputSpec
from edgecv.preprocess import wrapped_batches
from edgecv.progress import StepProgress as Progress

from . import sources
from .sources import ARRAY_SUFFIXES, Sample

# Below this many calibration inputs the ranges of rare activations are guesses; INT8 accuracy can
# drop with no error anywhere (a popular exporter calibrates on 4 images by default).
RECOMMENDED_MIN = 200
# A fidelity figure from fewer held-out inputs than this says little.
MIN_HOLDOUT = 8
DEFAULT_HOLDOUT = 64
# Preprocessed tensors are kept in memory up to this many bytes, so that the several passes over the
# data (ONNX ranges, NNCF, fidelity) decode each picture once; past it they are decoded again.
DEFAULT_CACHE_BYTES = 512 << 20


class CalibrationWarning(UserWarning):
    """The calibration set is smaller than asked, too small to trust, or not the user's own data."""


@dataclass
class CalibrationReport:
    """What was used to calibrate, what was skipped and why, and what to worry about."""

    source: str
    kind: str  # "folder", "list", "array" or "default"
    requested: int
    seed: int
    candidates: int  # inputs the source offered
    examined: int  # inputs looked at (decoded) to find enough readable ones
    calibration: int = 0
    holdout: int = 0
    holdout_in_sample: bool = False  # fidelity measured on calibration inputs: the source was too small
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skipped_count"] = self.skipped_count
        return d


class _TensorCache:
    """Preprocessed tensors by sample, up to a byte budget (first come, first kept)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self._tensors: dict[int, np.ndarray] = {}

    def get(self, sample: Sample, spec: InputSpec) -> np.ndarray:
        key = id(sample)
        hit = self._tensors.get(key)
        if hit is not None:
            return hit
        tensor = sample.tensor(spec)
        if self.used + tensor.nbytes <= self.max_bytes:
            tensor.setflags(write=False)
            self._tensors[key] = tensor
            self.used += tensor.nbytes
        return tensor


class SampleSet(Sequence):
    """A sequence of preprocessed (C, H, W) float32 tensors, produced on first access."""

    def __init__(self, samples: list[Sample], spec: InputSpec, cache: _TensorCache):
        self.samples = samples
        self.spec = spec
        self._cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return SampleSet(self.samples[index], self.spec, self._cache)
        return self._cache.get(self.samples[index], self.spec)

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.samples]

    def batches(self, batch_size: int = 1) -> Iterator[np.ndarray]:
        """(B, C, H, W) batches; the last one is filled up with the first inputs again, because an
        exported graph with a fixed batch dimension accepts no other size (duplicates change no
        range)."""
        for idx in wrapped_batches(len(self), batch_size):
            yield np.stack([self[i] for i in idx])

    def array(self) -> np.ndarray:
        """All tensors stacked (N, C, H, W): for small sets such as the hold-out."""
        if not self.samples:
            return np.zeros((0, self.spec.channels, self.spec.height, self.spec.width), np.float32)
        return np.stack([self[i] for i in range(len(self))])


@dataclass
class CalibrationData:
    spec: InputSpec
    calibration: SampleSet
    holdout: SampleSet
    report: CalibrationReport
    options: dict[str, Any]

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over the chosen inputs' content (in order) and the preprocessing, so a cache keyed
        on it is invalid as soon as any picture, the sampling or the InputSpec changes."""
        h = hashlib.sha256()
        spec = self.spec.to_dict()
        spec.pop("extra", None)
        h.update(json.dumps({"spec": spec, **self.options}, sort_keys=True, default=str).encode())
        file_digest = lru_cache(maxsize=None)(sources.file_sha256)
        for part in (self.calibration, self.holdout):
            h.update(b"|")
            for s in part.samples:
                h.update(s.digest(file_digest))
        return h.hexdigest()

    def ort_reader(self, input_name: str | None = None, batch_size: int = 1):
        """An ONNX Runtime ``CalibrationDataReader`` over the calibration inputs."""
        from .ranges import SampleReader

        return SampleReader(self.calibration, input_name or self.spec.input_name, batch_size)


def split_counts(available: int, size: int, holdout: int) -> tuple[int, int, bool]:
    """(calibration, hold-out, hold-out is in-sample) for ``available`` usable inputs.

    Enough inputs: both as asked. Otherwise the hold-out is what is left after ``size`` if that is
    at least a few inputs, else a fifth of the data (calibration gets the rest). With too few to
    spare even that, or no hold-out asked for, fidelity is measured on calibration inputs and the
    report says so."""
    needed = min(holdout, MIN_HOLDOUT)
    if holdout > 0:
        if available >= size + holdout:
            return size, holdout, False
        if available - size >= needed:
            return size, min(holdout, available - size), False
        hold = min(holdout, available // 5)
        if hold >= needed:
            return min(size, available - hold), hold, False
    calib = min(size, available)
    return calib, min(holdout or DEFAULT_HOLDOUT, calib), True


def load_calibration(
    source: str | Path | None,
    spec: InputSpec,
    size: int = 300,
    seed: int = 0,
    holdout: int = DEFAULT_HOLDOUT,
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    progress: Progress | None = None,
) -> CalibrationData:
    """Choose ``size`` calibration inputs and ``holdout`` held-out inputs from ``source``.

    ``source``: a folder of images (searched recursively), a text file listing image paths (relative
    to the file), a ``.npy``/``.npz`` array already preprocessed to (N, C, H, W), or None for the
    photographs that ship with scikit-image (with a warning: INT8 accuracy needs your own data).
    Sampling is deterministic for a given ``seed``. Unusable files are skipped and named in the report.
    Raises :class:`CalibrationDataError` for anything that leaves nothing to calibrate with.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise CalibrationDataError(f"the calibration size must be a positive number of inputs, got {size!r}")
    if isinstance(holdout, bool) or not isinstance(holdout, (int, np.integer)) or holdout < 0:
        raise CalibrationDataError(f"the hold-out size must be 0 or more inputs, got {holdout!r}")
    size, holdout = int(size), int(holdout)
    cache = _TensorCache(cache_bytes)
    if source is None:
        calib, held, report = _from_default_photos(spec, size, seed, holdout)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise CalibrationDataError(f"calibration data not found: {path}")
        if path.is_dir():
            calib, held, report = _from_folder(path, spec, size, seed, holdout, progress)
        elif path.suffix.lower() in ARRAY_SUFFIXES:
            calib, held, report = _from_array(path, spec, size, seed, holdout)
        elif sources.is_image_name(path):
            raise CalibrationDataError(f"{path} is a single image; pass the folder that holds your calibration images")
        else:
            calib, held, report = _from_list(path, spec, size, seed, holdout, progress)
    _add_size_warnings(report)
    for message in report.warnings:
        warnings.warn(message, CalibrationWarning, stacklevel=2)
    options = {"source_kind": report.kind, "size": size, "seed": seed, "holdout": holdout}
    return CalibrationData(spec, SampleSet(calib, spec, cache), SampleSet(held, spec, cache), report, options)


def _permutation(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def _split(usable: list, size: int, holdout: int, report: CalibrationReport) -> tuple[list, list]:
    n_calib, n_hold, in_sample = split_counts(len(usable), size, holdout)
    calib = usable[:n_calib]
    held = calib[:n_hold] if in_sample else usable[n_calib : n_calib + n_hold]
    report.calibration, report.holdout, report.holdout_in_sample = len(calib), len(held), in_sample
    if in_sample:
        report.notes.append(
            f"only {len(usable)} usable inputs: too few to hold any out, so the fidelity report is "
            "measured on calibration inputs and is optimistic"
        )
    elif n_hold < holdout:
        report.notes.append(f"{n_hold} inputs held out for the fidelity report (asked {holdout})")
    return calib, held


def _from_images(images, spec, size, seed, holdout, report, progress) -> tuple[list, list]:
    target = (spec.width, spec.height)
    done = 0

    def check(path: Path) -> str | None:
        nonlocal done
        done += 1
        if progress is not None:
            progress("checking calibration images", done, min(len(images), size + holdout))
        return sources.check_image(path, target)

    usable, skipped = sources.readable(images, _permutation(len(images), seed), size + holdout, check)
    report.examined += len(usable) + len(skipped)
    report.skipped += [{"item": item, "reason": reason} for item, reason in skipped]
    if not usable:
        examples = "; ".join(f"{s['item']}: {s['reason']}" for s in report.skipped[:3])
        raise CalibrationDataError(
            f"none of the {len(report.skipped)} images in {report.source} could be read ({examples})"
        )
    return _split(usable, size, holdout, report)


def _from_folder(path, spec, size, seed, holdout, progress):
    images, others = sources.folder_images(path)
    if not images:
        extra = f" ({others} other files)" if others else ""
        raise CalibrationDataError(
            f"no images ({', '.join(s.lstrip('.') for s in sources.IMAGE_SUFFIXES)}) in {path}{extra}"
        )
    report = CalibrationReport(str(path), "folder", size, seed, candidates=len(images), examined=0)
    if others:
        report.notes.append(f"{others} files without an image suffix ignored")
    return (*_from_images(images, spec, size, seed, holdout, report, progress), report)


def _from_list(path, spec, size, seed, holdout, progress):
    images, missing = sources.list_file_images(path)
    report = CalibrationReport(str(path), "list", size, seed, candidates=len(images) + len(missing), examined=0)
    report.skipped += [{"item": item, "reason": reason} for item, reason in missing]
    report.examined = len(missing)
    if not images:
        raise CalibrationDataError(
            f"none of the {len(missing)} paths listed in {path} exists (e.g. {missing[0][0]}); "
            "relative paths are read from the list file's folder"
        )
    return (*_from_images(images, spec, size, seed, holdout, report, progress), report)


def _from_array(path, spec, size, seed, holdout):
    arr = sources.load_array(path, spec)
    rows = sources.array_rows(arr, path.name)
    order = _permutation(len(rows), seed)
    report = CalibrationReport(str(path), "array", size, seed, candidates=len(rows), examined=0)
    chosen = [rows[i] for i in order[: size + holdout]]
    report.examined = len(chosen)
    bad = [r.label for r in chosen if not np.isfinite(arr[r.index]).all()]
    if bad:
        raise CalibrationDataError(f"{path} holds NaN or infinite values (e.g. {bad[0]})")
    if arr.dtype != np.float32:
        report.notes.append(f"{arr.dtype} array converted to float32")
    return (*_split(chosen, size, holdout, report), report)


def _from_default_photos(spec, size, seed, holdout):
    photos = sources.default_photo_paths()
    order = _permutation(len(photos), seed)
    n_hold_photos = 0
    if holdout > 0 and len(photos) >= 2:
        # At least one photo on each side: a tiny --calib-size must still leave photos to calibrate on.
        n_hold_photos = min(len(photos) - 1, max(1, round(len(photos) * holdout / (size + holdout))))
    calib_photos = [photos[i] for i in sorted(order[n_hold_photos:])]
    hold_photos = [photos[i] for i in sorted(order[:n_hold_photos])]
    report = CalibrationReport(
        "scikit-image sample photographs", "default", size, seed, candidates=len(photos), examined=len(photos)
    )
    min_area = 0.6 if spec.task == "detection" else 0.25
    calib = sources.photo_crops(calib_photos, size, seed, min_area)
    if hold_photos:
        held = sources.photo_crops(hold_photos, holdout, seed, min_area)
        report.holdout_in_sample = False
    else:
        held = calib[: min(holdout or DEFAULT_HOLDOUT, len(calib))]
        report.holdout_in_sample = True
    report.calibration, report.holdout = len(calib), len(held)
    report.warnings.append(
        f"no calibration data given: calibrating on {len(calib)} crops of {len(calib_photos)} stock "
        "photographs from scikit-image. INT8 accuracy on your task needs calibration images like "
        "the ones your model will see: pass --calib with a few hundred of them"
    )
    report.notes.append(
        f"{len(calib)} calibration inputs are crops and mirror images of {len(calib_photos)} photos; "
        f"the {len(held)} held-out inputs come from {len(hold_photos)} other photos "
        f"({', '.join(p.name for p in hold_photos) or 'none'})"
    )
    return calib, held, report


def _add_size_warnings(report: CalibrationReport) -> None:
    if report.kind == "default":
        return  # its own warning already says the data is not the user's
    n = report.calibration
    if n < report.requested:
        report.warnings.append(
            f"asked for {report.requested} calibration inputs but {report.source} has only {n} usable"
            + (f" ({report.skipped_count} skipped)" if report.skipped else "")
            + (
                f" after holding out {report.holdout} for the fidelity report"
                if not report.holdout_in_sample and report.holdout
                else ""
            )
        )
    if n < RECOMMENDED_MIN:
        report.warnings.append(
            f"INT8 accuracy at risk: calibrating on only {n} inputs. Ranges from fewer than "
            f"{RECOMMENDED_MIN} representative images often clip rare activations and lose accuracy "
            "without any error; give a few hundred"
        )
    if report.skipped:
        names = ", ".join(s["item"] for s in report.skipped[:5])
        more = f" and {report.skipped_count - 5} more" if report.skipped_count > 5 else ""
        report.warnings.append(f"skipped {report.skipped_count} unusable files: {names}{more}")
