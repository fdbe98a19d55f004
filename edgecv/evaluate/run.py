"""``edgecv eval``: accuracy of every artifact of a run (or of one artifact, or a zoo model) on the
user's data, with the same preprocessing for all, INT8 drops against the run's FP32 artifact, and
a ``results.json`` the benchmark report reads.

Every artifact of a run folder is fed the same tensors (preprocessed once from the manifest's
:class:`InputSpec`), so differences between rows are the artifacts', not the pipeline's.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecv.errors import ArtifactError, BackendUnavailableError, InvalidOptionError, OutputPathError
from edgecv.models.spec import InputSpec, detection_outputs
from edgecv.preprocess import UnreadableImage, preprocess_with_transform
from edgecv.runfolder import EVAL_FILE, RESULTS_FILE, disk_digest, scored_accuracy, write_json_atomic

from .datasets import (
    ClassCountError,
    CocoDataset,
    DatasetError,
    ImageFolderDataset,
    NpzDataset,
    TaskMismatchError,
    open_dataset,
)
from .metrics import CategoryMapping, NmsSettings, TopKMeter, coco_map, coco_results, nms_numpy

EVAL_SCHEMA = "edgecv.eval/1"
# COCO mAP counts every detection down to a very low score; a threshold baked above this cuts the
# tail of the precision–recall curve, so the figure is a lower bound.
CONF_WARN = 0.05
PREPROCESS_CACHE_BYTES = 1 << 30
WARMUP_CALLS = 3


class EvalObserver:
    """Progress hooks; the CLI renders them with rich, the library stays quiet."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self, label: str, n: int) -> None: ...

    def end(self, label: str, result: "EvalResult") -> None: ...

    def skipped(self, label: str, reason: str) -> None: ...


@dataclass
class EvalItem:
    label: str
    source: Any
    backend: str
    record: dict[str, Any] = field(default_factory=dict)
    load_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    artifact: str
    backend: str
    path: str | None
    artifact_precision: str | None
    precision: str | None
    intended_for: str | None
    task: str
    metrics: dict[str, Any]
    batch: int
    samples_ms: list[float]
    load_s: float | None
    size_bytes: int | None
    record: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    delta: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headline(self) -> str:
        return "top1" if self.task == "classification" else "map"

    def accuracy(self, data: dict[str, Any], conf_thres: float | None) -> dict[str, Any]:
        """The ``accuracy`` dict of a results.json row."""
        keys = ("top1", "top5") if self.task == "classification" else ("map", "map50", "map75", "ar100")
        acc = {"task": self.task, "metric": self.headline, "value": self.metrics.get(self.headline)}
        acc.update({k: self.metrics.get(k) for k in keys})
        acc.update(
            images=self.metrics.get("images"),
            data=data.get("path"),
            reference=self.reference,
            delta=self.delta.get(self.headline),
        )
        if self.task == "detection":
            acc.update(
                detections=self.metrics.get("detections"), conf_thres=conf_thres, delta_map50=self.delta.get("map50")
            )
        return acc

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "backend": self.backend,
            "path": self.path,
            "artifact_precision": self.artifact_precision,
            "precision": self.precision,
            "intended_for": self.intended_for,
            "task": self.task,
            "metrics": self.metrics,
            "reference": self.reference,
            "delta": self.delta,
            "batch": self.batch,
            "load_s": self.load_s,
            "median_ms": float(np.median(self.samples_ms)) if self.samples_ms else None,
            "size_bytes": self.size_bytes,
            "notes": self.notes,
        }


@dataclass
class EvalReport:
    target: dict[str, Any]
    data: dict[str, Any]
    task: str
    input_spec: dict[str, Any]
    results: list[EvalResult]
    mapping: dict[str, Any] | None = None
    conf_thres: float | None = None
    postprocess: dict[str, Any] | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        from edgecv import __version__

        return {
            "schema": EVAL_SCHEMA,
            "created": self.created,
            "edgecv_version": __version__,
            "target": self.target,
            "data": self.data,
            "task": self.task,
            "input_spec": self.input_spec,
            "category_mapping": self.mapping,
            "conf_thres": self.conf_thres,
            "postprocess": self.postprocess,
            "results": [{**r.to_dict(), "accuracy": r.accuracy(self.data, self.conf_thres)} for r in self.results],
            "skipped": self.skipped,
            "warnings": self.warnings,
        }

    def results_document(self) -> dict[str, Any]:
        """An ``edgecv.results/1`` document: the latency is what the eval loop timed per call."""
        from edgecv import __version__
        from edgecv.runfolder import RESULTS_SCHEMA
        from edgecv.runtime.stats import LatencyStats
        from edgecv.runtime.timing import BenchResult
        from edgecv.sysinfo import backend_versions, machine_info

        rows = []
        for r in self.results:
            timed = r.samples_ms[WARMUP_CALLS:] if len(r.samples_ms) > 2 * WARMUP_CALLS else r.samples_ms
            if not timed:
                continue
            stats = LatencyStats.from_ns([int(s * 1e6) for s in timed])
            row = BenchResult(
                artifact=r.artifact,
                backend=r.backend,
                scenario="single-stream",
                batch=r.batch,
                latency=stats,
                throughput_ips=1000.0 * r.batch / stats.mean_ms if stats.mean_ms > 0 else None,
                samples_ms=timed,
                warmup=len(r.samples_ms) - len(timed),
                path=r.path,
                precision=r.precision,
                artifact_precision=r.artifact_precision,
                intended_for=r.intended_for,
                load_s=r.load_s,
                size_bytes=r.size_bytes,
                fidelity=dict(r.record.get("fidelity") or {}),
                notes=[
                    "latency: timed per call during `edgecv eval` on real images (no dedicated benchmark loop)",
                    *r.notes,
                ],
            ).to_dict()
            rows.append({**row, "accuracy": r.accuracy(self.data, self.conf_thres)})
        return {
            "schema": RESULTS_SCHEMA,
            "created": self.created,
            "edgecv_version": __version__,
            "target": self.target,
            "settings": {
                "scenario": "single-stream",
                "warmup": WARMUP_CALLS,
                "iterations": max((len(r["samples_ms"]) for r in rows), default=0),
                "duration": None,
                "isolation": "in-process, timed during edgecv eval",
                "source": "edgecv eval",
            },
            "machine": machine_info(),
            "versions": backend_versions(),
            "results": rows,
            "skipped": self.skipped,
        }


# --- what to evaluate ----------------------------------------------------------------------------


def _manifest_for(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None, Path | None]:
    """(artifact record, manifest, run folder) of an artifact inside a run folder, if it is in one."""
    from edgecv.runfolder import find_artifact

    found = find_artifact(path)
    return found if found else ({}, None, None)


def plan(
    target: str | Path,
    *,
    weights: str | Path | None = None,
    backends: Sequence[str] | None = None,
    zoo_options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None, Path | None, list[EvalItem], list[dict[str, str]]]:
    """(target description, manifest, run folder, items, skipped)."""
    from edgecv.runfolder import MANIFEST_NAME, read_manifest
    from edgecv.runtime.plan import run_folder_artifacts
    from edgecv.runtime.registry import backend_name, is_installed, resolve_backend

    wanted = {backend_name(b) for b in backends} if backends else None
    skipped: list[dict[str, str]] = []
    path = Path(target).expanduser()
    if weights is not None and (path.exists() or "/" in str(target)):
        raise InvalidOptionError(
            "--weights goes with a zoo model name; an artifact or run folder carries its own weights"
        )
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        manifest = read_manifest(path)
        items = []
        for label, backend, record in run_folder_artifacts(path, manifest, wanted, skipped):
            if not is_installed(backend):
                skipped.append({"artifact": label, "reason": f"{backend} is not installed"})
                continue
            items.append(EvalItem(label, str(path / record["path"]), backend, record, _load_options(record)))
        if not items:
            raise InvalidOptionError(
                f"nothing to evaluate in {path}" + (f" for backend {', '.join(sorted(wanted))}" if wanted else "")
            )
        return {"path": str(path), "kind": "run-folder", "model": manifest.get("model")}, manifest, path, items, skipped
    backend = resolve_backend(str(target), next(iter(wanted)) if wanted and len(wanted) == 1 else None)
    if path.exists():
        record, manifest, run_dir = _manifest_for(path)
        item = EvalItem(record.get("name") or path.name, str(path), backend, record, _load_options(record, backend))
        return (
            {"path": str(path), "kind": "artifact", "model": (manifest or {}).get("model")},
            manifest,
            run_dir,
            [item],
            skipped,
        )
    options = {k: v for k, v in (zoo_options or {}).items() if v is not None}
    if weights is not None:
        wpath = Path(weights).expanduser()
        if not wpath.is_file():
            from edgecv.errors import WeightsError

            raise WeightsError(
                f"weights file {wpath} does not exist" if not wpath.exists() else f"weights path {wpath} is not a file"
            )
        options["weights"] = str(wpath)
    item = EvalItem(f"pytorch ({target})", str(target), "torch", {"precision": "fp32"}, options)
    return (
        {"path": str(target), "kind": "model", "model": {"name": str(target), **options}},
        None,
        None,
        [item],
        skipped,
    )


def _load_options(record: dict[str, Any], backend: str | None = None) -> dict[str, Any]:
    """An artifact labelled FP32 (or FP16-compressed weights) is scored computing in f32: OpenVINO
    would run bf16 on CPUs with AMX or AVX-512 BF16, and the accuracy of "fp32" must be FP32's."""
    if (backend or record.get("backend")) == "openvino" and record.get("precision") in ("fp32", "fp16"):
        return {"precision": "f32"}
    return {}


# --- the input spec, the task and the classes ----------------------------------------------------


def _infer_spec(runtime: Any) -> InputSpec:
    """A spec for an artifact no manifest describes: the input's size, outputs read by name."""
    info = runtime.inputs[0]
    shape = info.shape or (1, 3, 224, 224)
    h, w = (shape[2], shape[3]) if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]) else (224, 224)
    names = {o.name for o in runtime.outputs}
    nms = {"num_dets", "boxes", "scores", "labels"} <= names
    if nms or names == {"boxes", "scores"}:
        return InputSpec(
            height=h,
            width=w,
            input_name=info.name,
            task="detection",
            resize="resize",
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            outputs=detection_outputs(nms),
        )
    return InputSpec(height=h, width=w, input_name=info.name, output_names=(runtime.outputs[0].name,))


def _stamped_metadata(source: Any) -> tuple[InputSpec | None, dict[str, Any]]:
    """The spec and model description edgecv export stamps into an artifact, where the module
    that reads them is present."""
    try:
        from edgecv.artifact_metadata import input_spec_of, model_info_of
    except ImportError:
        return None, {}
    path = Path(str(source))
    if not path.is_file():
        return None, {}
    try:
        return input_spec_of(path), dict(model_info_of(path) or {})
    except Exception:  # noqa: BLE001 - unreadable metadata: fall back to inferring the spec
        return None, {}


def _model_classes(spec: InputSpec, runtime: Any, model_info: dict[str, Any]) -> int | None:
    """Classes of the model's head (background included), from the artifact or the manifest."""
    meaning = "logits" if spec.task == "classification" else "class_scores"
    out = spec.output(meaning)
    if out is not None:
        info = next((o for o in runtime.outputs if o.name == out.name), None)
        if info is not None and info.shape and isinstance(info.shape[-1], int):
            return int(info.shape[-1])
    value = model_info.get("num_classes")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _background(spec: InputSpec, model_info: dict[str, Any], runtime: Any) -> int | None:
    for source in (model_info, spec.extra):
        if "background_class" in source:
            return source["background_class"]
    model = getattr(runtime, "model", None)  # the torch backend: the module says it
    return getattr(model, "background_class", None)


def _check_task(spec: InputSpec, dataset: Any, label: str) -> None:
    if spec.task == dataset.task:
        return
    if spec.task == "classification":
        raise TaskMismatchError(
            f"{label} is a classifier (its output is logits) but {dataset.describe()['path']} is COCO detection data; "
            "give an ImageFolder or a .npz of inputs and labels"
        )
    raise TaskMismatchError(
        f"{label} is a detector but {dataset.describe()['path']} is classification data ({dataset.kind}); "
        "give a COCO annotation file (--data ann.json --images DIR, or a folder holding both)"
    )


def _check_classes(
    label: str, spec: InputSpec, dataset: Any, classes: int | None, offset: int, explicit_map: bool
) -> None:
    if classes is None:
        return
    if isinstance(dataset, ImageFolderDataset) and dataset.num_classes != classes:
        hint = (
            f" (or list all {classes} classes, in the head's order, in {dataset.root}/labels.txt)"
            if dataset.num_classes < classes
            else ""
        )
        raise ClassCountError(
            f"{dataset.root} has {dataset.num_classes} classes but the head of {label} has {classes}{hint}"
        )
    if isinstance(dataset, NpzDataset) and int(dataset.labels.max()) >= classes:
        raise ClassCountError(
            f"{dataset.path} has label {int(dataset.labels.max())} but the head of {label} has {classes} classes"
        )
    if isinstance(dataset, CocoDataset) and not explicit_map and classes - offset != dataset.num_classes:
        bg = " besides background" if offset else ""
        raise ClassCountError(
            f"{dataset.annotation_file.name} has {dataset.num_classes} categories but {label} predicts "
            f"{classes - offset} classes{bg}; map them with --category-map LABEL:ID,..."
        )


# --- running -------------------------------------------------------------------------------------


class _Inputs:
    """Preprocessed tensors (and the transforms back to the pictures), computed once and kept
    while they fit in memory, so every artifact sees identical inputs."""

    def __init__(self, dataset: Any, spec: InputSpec):
        self.dataset, self.spec = dataset, spec
        self.cache: dict[int, tuple[np.ndarray, Any]] = {}
        per = 4 * spec.channels * spec.height * spec.width
        self.cacheable = per * len(dataset) <= PREPROCESS_CACHE_BYTES
        self.unreadable: list[str] = []
        if isinstance(dataset, NpzDataset) and tuple(dataset.inputs.shape[1:]) != (
            spec.channels,
            spec.height,
            spec.width,
        ):
            raise DatasetError(
                f"{dataset.path} holds inputs of shape {list(dataset.inputs.shape[1:])}; the model takes "
                f"{[spec.channels, spec.height, spec.width]}"
            )

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, i: int) -> tuple[np.ndarray, Any]:
        if isinstance(self.dataset, NpzDataset):
            return self.dataset.inputs[i], None
        if i in self.cache:
            return self.cache[i]
        if isinstance(self.dataset, ImageFolderDataset):
            path = self.dataset.samples[i][0]
        else:
            path = self.dataset.image_path(self.dataset.image_ids[i])
        try:
            value = preprocess_with_transform(path, self.spec)
        except UnreadableImage as exc:
            raise DatasetError(f"cannot read image {exc}") from None
        if self.cacheable:
            self.cache[i] = value
        return value


def _output(outputs: dict[str, np.ndarray], spec: InputSpec, meaning: str) -> np.ndarray:
    out = spec.output(meaning)
    if out is not None and out.name in outputs:
        return outputs[out.name]
    # Backends may rename outputs; the declared order still holds.
    names = [o.meaning for o in spec.outputs]
    if meaning in names and len(outputs) == len(names):
        return list(outputs.values())[names.index(meaning)]
    raise ArtifactError(f"the model has no '{meaning}' output (outputs: {', '.join(outputs)})")


def _evaluate_item(
    item: EvalItem,
    runtime: Any,
    spec: InputSpec,
    inputs: _Inputs,
    *,
    mapping: CategoryMapping | None,
    nms: NmsSettings | None,
    observer: EvalObserver,
) -> EvalResult:
    dataset = inputs.dataset
    # A static batch is fed whole; a dynamic one, one picture per call (a per-image latency).
    batch = runtime.batch_range[0]
    dtype = runtime.inputs[0].dtype
    meter = TopKMeter()
    detections: list[dict[str, Any]] = []
    unmapped = 0
    samples: list[float] = []
    observer.start(item.label, len(inputs))
    for start in range(0, len(inputs), batch):
        idx = list(range(start, min(start + batch, len(inputs))))
        got = [inputs.get(i) for i in idx]
        x = np.stack([g[0] for g in got])
        if len(idx) < batch:  # a static batch: pad with the last picture, ignore its outputs
            x = np.concatenate([x, np.repeat(x[-1:], batch - len(idx), 0)])
        x = np.ascontiguousarray(x.astype(dtype, copy=False))
        t0 = time.perf_counter_ns()
        outputs = runtime.infer(x)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        if spec.task == "classification":
            logits = _output(outputs, spec, "logits")
            logits = logits.reshape(logits.shape[0], -1)[: len(idx)]
            if isinstance(dataset, NpzDataset):
                labels = dataset.labels[idx]
            else:
                labels = np.asarray([dataset.samples[i][1] for i in idx])
            meter.update(logits, labels)
        else:
            assert mapping is not None
            for j, i in enumerate(idx):
                transform = got[j][1]
                if nms is None:
                    n = int(np.asarray(_output(outputs, spec, "num_dets")).reshape(-1)[j])
                    boxes = _output(outputs, spec, "boxes")[j, :n]
                    scores = _output(outputs, spec, "scores")[j, :n]
                    labels = _output(outputs, spec, "labels")[j, :n]
                    keep = labels >= 0
                    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
                else:
                    boxes, scores, labels = nms_numpy(
                        _output(outputs, spec, "boxes")[j], _output(outputs, spec, "class_scores")[j], nms
                    )
                dets, missed = coco_results(
                    dataset.image_ids[i], transform.boxes_to_original(boxes), scores, labels, mapping
                )
                detections += dets
                unmapped += missed
        observer.advance(item.label, len(idx))
    notes: list[str] = []
    if spec.task == "classification":
        metrics = meter.result()
    else:
        metrics = coco_map(dataset.coco, detections, dataset.image_ids)
        if unmapped:
            notes.append(
                f"{item.label}: {unmapped} detections had a label with no category in the mapping and were dropped"
            )
    return EvalResult(
        artifact=item.label,
        backend=runtime.backend,
        path=str(runtime.path) if runtime.path else None,
        artifact_precision=item.record.get("precision"),
        precision=runtime.precision,
        intended_for=item.record.get("intended_for"),
        task=spec.task,
        metrics=metrics,
        batch=batch,
        samples_ms=samples,
        load_s=runtime.load_s,
        size_bytes=runtime.size_bytes,
        record=item.record,
        notes=notes,
        predictions=detections,
    )


def _add_deltas(results: list[EvalResult]) -> None:
    """INT8 (and FP16) rows against the FP32 artifact of the same format, else any FP32 one."""
    fp32 = [r for r in results if (r.artifact_precision or r.precision) == "fp32"]
    for r in results:
        if (r.artifact_precision or r.precision) == "fp32" or not fp32:
            continue
        fmt = r.record.get("format")
        ref = next((f for f in fp32 if f.record.get("format") == fmt), fp32[0])
        r.reference = ref.artifact
        keys = ("top1", "top5") if r.task == "classification" else ("map", "map50", "map75", "ar100")
        r.delta = {
            k: r.metrics[k] - ref.metrics[k]
            for k in keys
            if r.metrics.get(k) is not None and ref.metrics.get(k) is not None
        }


def evaluate(
    target: str | Path,
    data: str | Path,
    *,
    images: str | Path | None = None,
    limit: int | None = None,
    weights: str | Path | None = None,
    backends: Sequence[str] | None = None,
    input_spec: InputSpec | None = None,
    category_map: str | None = None,
    label_offset: int | None = None,
    zoo_options: dict[str, Any] | None = None,
    observer: EvalObserver | None = None,
) -> EvalReport:
    """Evaluate ``target`` (a run folder, an artifact, or a zoo model name with ``weights``) on
    ``data`` (ImageFolder, ``.npz`` or COCO).

    ``category_map`` overrides the label → category id table (``"0:1,1:3"`` or a JSON file);
    ``label_offset`` the default's offset (1 when class 0 is background). ``input_spec`` replaces
    the manifest's (needed for an artifact no manifest describes, if the defaults are wrong).
    """
    from edgecv.runtime import load

    observer = observer or EvalObserver()
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidOptionError(f"--limit must be an integer ≥ 1, got {limit!r}")
    if label_offset is not None and label_offset < 0:
        raise InvalidOptionError(f"--label-offset must be ≥ 0, got {label_offset}")
    dataset = open_dataset(data, images).limit(limit)
    if isinstance(dataset, CocoDataset):
        dataset.check_images()
    target_info, manifest, run_dir, items, skipped = plan(
        target, weights=weights, backends=backends, zoo_options=zoo_options
    )
    model_info = dict((manifest or {}).get("model") or {})
    report_warnings: list[str] = []
    spec = input_spec or (
        InputSpec.from_dict(manifest["input_spec"]) if manifest and manifest.get("input_spec") else None
    )
    if spec is not None:
        _check_task(spec, dataset, items[0].label)
    results: list[EvalResult] = []
    inputs: _Inputs | None = None
    mapping: CategoryMapping | None = None
    nms: NmsSettings | None = None
    postprocess = model_info.get("postprocess") if isinstance(model_info.get("postprocess"), dict) else None
    conf = None
    for item in items:
        if (
            item.backend == "torch"
            and isinstance(dataset, (ImageFolderDataset, CocoDataset))
            and "num_classes" not in item.load_options
            and manifest is None
        ):
            item.load_options["num_classes"] = dataset.num_classes
        try:
            runtime = load(item.source, backend=item.backend, **item.load_options)
        except BackendUnavailableError as exc:
            # A device or package missing here skips that row (a TensorRT engine on a CPU machine).
            if len(items) == 1:
                raise
            skipped.append({"artifact": item.label, "reason": str(exc)})
            observer.skipped(item.label, str(exc))
            continue
        try:
            if item.backend == "torch" and manifest is None and getattr(runtime, "model", None) is not None:
                bg = getattr(runtime.model, "background_class", None)
                if (
                    bg == 0
                    and isinstance(dataset, CocoDataset)
                    and item.load_options.get("num_classes") == dataset.num_classes
                ):
                    runtime.close()
                    item.load_options["num_classes"] = dataset.num_classes + 1
                    runtime = load(item.source, backend=item.backend, **item.load_options)
            item_spec = spec or getattr(runtime, "input_spec", None)
            if item_spec is None:
                item_spec, stamped = _stamped_metadata(item.source)
                for key, value in stamped.items():
                    model_info.setdefault(key, value)
                if postprocess is None and isinstance(model_info.get("postprocess"), dict):
                    postprocess = model_info["postprocess"]
            if item_spec is None:
                item_spec = _infer_spec(runtime)
                report_warnings.append(
                    f"{item.label}: no manifest describes it; preprocessing assumed {item_spec.resize} to "
                    f"{item_spec.height}x{item_spec.width}, mean {list(item_spec.mean)}, std {list(item_spec.std)} "
                    "(export with edgecv, or pass input_spec=, to be sure)"
                )
            _check_task(item_spec, dataset, item.label)
            if spec is None:
                spec = item_spec
            if inputs is None:
                inputs = _Inputs(dataset, item_spec)
            if item_spec.task == "detection" and mapping is None:
                assert isinstance(dataset, CocoDataset)
                background = _background(item_spec, model_info, runtime)
                offset = label_offset if label_offset is not None else (1 if background == 0 else 0)
                mapping = (
                    CategoryMapping.parse(category_map, dataset.category_ids)
                    if category_map
                    else CategoryMapping.default(dataset.category_ids, offset)
                )
                if postprocess is None and isinstance(item_spec.extra.get("postprocess"), dict):
                    postprocess = item_spec.extra["postprocess"]  # a custom module's own declaration
                if item_spec.output("num_dets") is None:
                    iou = float((postprocess or {}).get("iou_thres", 0.5))
                    nms = NmsSettings(iou_thres=iou, background=background)
                elif postprocess is not None:
                    conf = postprocess.get("conf_thres")
                classes = _model_classes(item_spec, runtime, model_info)
                _check_classes(item.label, item_spec, dataset, classes, offset, bool(category_map))
            elif item_spec.task == "classification":
                _check_classes(item.label, item_spec, dataset, _model_classes(item_spec, runtime, model_info), 0, False)
            result = _evaluate_item(item, runtime, item_spec, inputs, mapping=mapping, nms=nms, observer=observer)
        finally:
            runtime.close()
        results.append(result)
        observer.end(item.label, result)
    if not results:
        raise ArtifactError(
            "no artifact could be evaluated: " + "; ".join(f"{s['artifact']}: {s['reason']}" for s in skipped)
        )
    _add_deltas(results)
    assert spec is not None
    if conf is not None and conf > CONF_WARN:
        report_warnings.append(
            f"the artifacts keep only detections scoring above conf_thres {conf:g} (baked at export); COCO mAP is "
            f"measured down to ~0.001, so these figures are lower bounds: re-export with --conf-thres 0.001 to compare "
            "with published mAP"
        )
    if nms is not None:
        report_warnings.append(
            f"--no-nms artifacts: edgecv eval ran per-class NMS itself (score > {nms.conf_thres:g}, IoU {nms.iou_thres:g}, "
            f"at most {nms.max_det} per image)"
        )
    if model_info.get("random_weights") or (target_info["kind"] == "model" and weights is None):
        report_warnings.append("the model was exported with random weights: its accuracy means nothing")
    report = EvalReport(
        target=target_info,
        data=dataset.describe(),
        task=spec.task,
        input_spec=spec.to_dict(),
        results=results,
        mapping=mapping.to_dict() if mapping else None,
        conf_thres=conf,
        postprocess=postprocess,
        skipped=skipped,
        warnings=report_warnings,
    )
    if run_dir is not None:
        record_eval(run_dir, report)
    return report


# --- where the figures go ------------------------------------------------------------------------


def record_eval(run_dir: Path, report: EvalReport) -> Path | None:
    """Keep the figures in ``<run>/eval.json`` (rows of the same data set merge by artifact), so a
    later ``edgecv benchmark --report`` shows them. Each row keeps the digest of the bytes it scored:
    once a re-export changes or removes its artifact, the row no longer counts."""
    path = run_dir / EVAL_FILE
    entries: dict[str, Any] = {}
    scored: dict[str, Any] = {}
    try:
        old = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        old = None
    if (
        isinstance(old, dict)
        and old.get("schema") == EVAL_SCHEMA
        and (old.get("data") or {}).get("path") == report.data.get("path")
    ):
        entries = scored_accuracy(run_dir)
        scored = {label: old["scored"][label] for label in entries}
    for r in report.results:
        rel = r.record.get("path")
        digest = disk_digest(run_dir, rel) if rel else None
        if digest is not None:
            entries[r.artifact] = r.accuracy(report.data, report.conf_thres)
            scored[r.artifact] = {"path": rel, "digest": digest}
    try:
        write_json_atomic(
            path,
            {
                "schema": EVAL_SCHEMA,
                "created": report.created,
                "data": report.data,
                "accuracy": entries,
                "scored": scored,
            },
        )
    except OSError as exc:
        warnings.warn(f"could not record the figures in {path}: {exc}", stacklevel=2)
        return None
    return path


def attach_accuracy(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the ``accuracy`` recorded by ``edgecv eval`` to the rows of a benchmark results document
    whose target is (or is inside) a run folder. Returns ``doc``."""
    target = Path(str((doc.get("target") or {}).get("path", "")))
    candidates = [target] + list(target.resolve().parents)[:2] if target.exists() else []
    for folder in candidates:
        path = folder / EVAL_FILE
        if folder.is_dir() and path.is_file():
            table = scored_accuracy(folder)  # only rows of the artifacts as the run folder holds them now
            for row in doc.get("results", []):
                if row.get("artifact") in table and not row.get("accuracy"):
                    row["accuracy"] = table[row["artifact"]]
            return doc
    return doc


def merge_into_results(doc: dict[str, Any], report: EvalReport) -> dict[str, Any]:
    """Put ``report``'s accuracy on the rows of an existing results document with the same
    artifact labels; rows only eval timed are added."""
    by_label = {r.artifact: r for r in report.results}
    seen = set()
    for row in doc.get("results", []):
        r = by_label.get(row.get("artifact"))
        if r is not None:
            row["accuracy"] = r.accuracy(report.data, report.conf_thres)
            seen.add(r.artifact)
    fresh = report.results_document()
    doc["results"] += [row for row in fresh["results"] if row["artifact"] not in seen]
    return doc


def write_eval_report(report: EvalReport, out_dir: str | Path) -> dict[str, Path]:
    """``results.json`` (merged into one a benchmark already wrote there), ``report.md``,
    ``report.html`` and ``eval.json`` in ``out_dir``."""
    from edgecv.report import read_results, write_report

    out = Path(out_dir).expanduser()
    existing = out / RESULTS_FILE
    doc = None
    if existing.is_file():
        try:
            doc = merge_into_results(read_results(existing), report)
        except ArtifactError:
            doc = None
    if doc is None:
        doc = report.results_document()
    written = write_report(doc, out)
    try:
        write_json_atomic(out / EVAL_FILE, report.to_dict())
    except OSError as exc:
        raise OutputPathError(f"cannot write {out / EVAL_FILE}: {exc.strerror or exc}") from None
    written[EVAL_FILE] = out / EVAL_FILE
    return written


def save_predictions(report: EvalReport, path: str | Path) -> list[Path]:
    """The COCO results JSON that was scored (one file per artifact: ``<stem>.<artifact>.json``
    when there are several)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputPathError(f"--save-predictions {path} is a folder; give a file name")
    if report.task != "detection":
        raise InvalidOptionError("--save-predictions writes COCO detection results; this is a classifier")
    written = []
    for r in report.results:
        target = (
            path if len(report.results) == 1 else path.with_name(f"{path.stem}.{r.artifact}{path.suffix or '.json'}")
        )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(r.predictions) + "\n")
        except OSError as exc:
            raise OutputPathError(f"cannot write {target}: {exc.strerror or exc}") from None
        written.append(target)
    return written
