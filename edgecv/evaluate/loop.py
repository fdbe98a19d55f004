"""``edgecv eval``: accuracy of every artifact of a run (or of one artifact, or a zoo model) on the
user's data, with the same preprocessing for all, INT8 drops against the run's FP32 artifact, and
a ``results.json`` the benchmark report reads.

Every artifact of a run folder is fed the same tensors (preprocessed once from the manifest's
:class:`InputSpec`), so differences between rows are the artifacts', not the pipeline's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecv.errors import ArtifactError, BackendUnavailableError, InvalidOptionError
from edgecv.models.spec import InputSpec
from edgecv.preprocess import UnreadableImage, preprocess_with_transform
from edgecv.progress import Observer

from .datasets import CocoDataset, DatasetError, ImageFolderDataset, NpzDataset, open_dataset
from .fit import background_class, check_classes, check_task, infer_spec, model_classes, stamped_metadata
from .metrics import CategoryMapping, NmsSettings, TopKMeter, coco_map, coco_results, nms_numpy
from .records import EvalReport, EvalResult, record_eval
from .targets import EvalItem, plan

# COCO mAP counts every detection down to a very low score; a threshold baked above this cuts the
# tail of the precision–recall curve, so the figure is a lower bound.
CONF_WARN = 0.05
PREPROCESS_CACHE_BYTES = 1 << 30


class PreparedInputs:
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


def named_output(outputs: dict[str, np.ndarray], spec: InputSpec, meaning: str) -> np.ndarray:
    out = spec.output(meaning)
    if out is not None and out.name in outputs:
        return outputs[out.name]
    # Backends may rename outputs; the declared order still holds.
    names = [o.meaning for o in spec.outputs]
    if meaning in names and len(outputs) == len(names):
        return list(outputs.values())[names.index(meaning)]
    raise ArtifactError(f"the model has no '{meaning}' output (outputs: {', '.join(outputs)})")


def image_detections(
    outputs: dict[str, np.ndarray],
    spec: InputSpec,
    j: int,
    nms: NmsSettings | None,
    image_id: int,
    transform: Any,
    mapping: CategoryMapping,
) -> tuple[list[dict[str, Any]], int]:
    """The COCO result dicts of row ``j`` of a detector's outputs (its in-graph NMS, or ours over
    ``--no-nms`` outputs), in original-image pixels; also how many labels had no category."""
    if nms is None:
        n = int(np.asarray(named_output(outputs, spec, "num_dets")).reshape(-1)[j])
        boxes = named_output(outputs, spec, "boxes")[j, :n]
        scores = named_output(outputs, spec, "scores")[j, :n]
        labels = named_output(outputs, spec, "labels")[j, :n]
        keep = labels >= 0
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    else:
        boxes, scores, labels = nms_numpy(
            named_output(outputs, spec, "boxes")[j], named_output(outputs, spec, "class_scores")[j], nms
        )
    return coco_results(image_id, transform.boxes_to_original(boxes), scores, labels, mapping)


def _evaluate_item(
    item: EvalItem,
    runtime: Any,
    spec: InputSpec,
    inputs: PreparedInputs,
    *,
    mapping: CategoryMapping | None,
    nms: NmsSettings | None,
    observer: Observer,
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
            logits = named_output(outputs, spec, "logits")
            logits = logits.reshape(logits.shape[0], -1)[: len(idx)]
            if isinstance(dataset, NpzDataset):
                labels = dataset.labels[idx]
            else:
                labels = np.asarray([dataset.samples[i][1] for i in idx])
            meter.update(logits, labels)
        else:
            assert mapping is not None
            for j, i in enumerate(idx):
                dets, missed = image_detections(outputs, spec, j, nms, dataset.image_ids[i], got[j][1], mapping)
                detections += dets
                unmapped += missed
        observer.advance(item.label, idx[-1] + 1)
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
    observer: Observer | None = None,
) -> EvalReport:
    """Evaluate ``target`` (a run folder, an artifact, or a zoo model name with ``weights``) on
    ``data`` (ImageFolder, ``.npz`` or COCO).

    ``category_map`` overrides the label → category id table (``"0:1,1:3"`` or a JSON file);
    ``label_offset`` the default's offset (1 when class 0 is background). ``input_spec`` replaces
    the manifest's (needed for an artifact no manifest describes, if the defaults are wrong).
    """
    from edgecv.runtime import load

    observer = observer or Observer()
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
        check_task(spec, dataset, items[0].label)
    results: list[EvalResult] = []
    inputs: PreparedInputs | None = None
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
            observer.note(f"skipped {item.label}: {exc}")
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
                item_spec, stamped = stamped_metadata(item.source)
                for key, value in stamped.items():
                    model_info.setdefault(key, value)
                if postprocess is None and isinstance(model_info.get("postprocess"), dict):
                    postprocess = model_info["postprocess"]
            if item_spec is None:
                item_spec = infer_spec(runtime)
                report_warnings.append(
                    f"{item.label}: no manifest describes it; preprocessing assumed {item_spec.resize} to "
                    f"{item_spec.height}x{item_spec.width}, mean {list(item_spec.mean)}, std {list(item_spec.std)} "
                    "(export with edgecv, or pass input_spec=, to be sure)"
                )
            check_task(item_spec, dataset, item.label)
            if spec is None:
                spec = item_spec
            if inputs is None:
                inputs = PreparedInputs(dataset, item_spec)
            if item_spec.task == "detection" and mapping is None:
                assert isinstance(dataset, CocoDataset)
                background = background_class(item_spec, model_info, runtime)
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
                classes = model_classes(item_spec, runtime, model_info)
                check_classes(item.label, item_spec, dataset, classes, offset, bool(category_map))
            elif item_spec.task == "classification":
                check_classes(item.label, item_spec, dataset, model_classes(item_spec, runtime, model_info), 0, False)
            result = _evaluate_item(item, runtime, item_spec, inputs, mapping=mapping, nms=nms, observer=observer)
        finally:
            runtime.close()
        results.append(result)
        observer.end(item.label)
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
