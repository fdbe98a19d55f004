"""``edgecv eval``'s metric as a function of a model's outputs: what the INT8 accuracy budget
(``edgecv export --max-accuracy-drop``) measures each candidate artifact with.

    validation = open_validation("digits.npz", spec, model_info)
    validation.score(run)            # top-1 (classifiers) or mAP@[.5:.95] (detectors), in points
    validation.score(run, [0, 5])    # the same over some of the pictures

``run`` is any "batch in, named outputs out" function (an ONNX Runtime session, an OpenVINO
compiled model), so calibration can score its candidates without knowing about data sets.
The inputs are preprocessed once, so every candidate sees identical tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.models.spec import InputSpec

from .datasets import CocoDataset, NpzDataset, open_dataset
from .fit import background_class, check_classes, check_task
from .loop import PreparedInputs, image_detections, named_output
from .metrics import CategoryMapping, NmsSettings, TopKMeter, coco_map

RunFn = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass
class AccuracyValidation:
    """One data set, preprocessed for one model; :meth:`score` is the metric in points (0–100)."""

    inputs: PreparedInputs
    spec: InputSpec
    batch: int
    mapping: CategoryMapping | None = None
    nms: NmsSettings | None = None

    @property
    def metric(self) -> str:
        return "top1" if self.spec.task == "classification" else "map"

    @property
    def metric_label(self) -> str:
        return "top-1" if self.spec.task == "classification" else "mAP@[.5:.95]"

    def __len__(self) -> int:
        return len(self.inputs)

    def describe(self) -> dict[str, Any]:
        return {**self.inputs.dataset.describe(), "metric": self.metric, "images": len(self)}

    def fingerprint(self) -> str:
        """Names, sizes and modification times of the data's files: what decides whether an
        export's INT8 stage measured against the same data."""
        dataset = self.inputs.dataset
        roots = [Path(dataset.describe()["path"])]
        if isinstance(dataset, CocoDataset):
            roots.append(dataset.images_dir)
        digest = hashlib.sha256()
        for root in roots:
            files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
            for p in files:
                stat = p.stat()
                digest.update(f"{p.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def score(self, run: RunFn, indices: Sequence[int] | None = None) -> float:
        """The metric of ``run``'s outputs over the pictures at ``indices`` (all when None)."""
        order = list(range(len(self))) if indices is None else [int(i) for i in indices]
        dataset = self.inputs.dataset
        meter = TopKMeter()
        detections: list[dict[str, Any]] = []
        for start in range(0, len(order), self.batch):
            idx = order[start : start + self.batch]
            got = [self.inputs.get(i) for i in idx]
            x = np.stack([g[0] for g in got]).astype(np.float32, copy=False)
            if len(idx) < self.batch:  # a static batch: pad with the last picture, ignore its outputs
                x = np.concatenate([x, np.repeat(x[-1:], self.batch - len(idx), 0)])
            outputs = run(np.ascontiguousarray(x))
            if self.spec.task == "classification":
                logits = named_output(outputs, self.spec, "logits")
                meter.update(logits.reshape(logits.shape[0], -1)[: len(idx)], _labels(dataset, idx))
                continue
            assert self.mapping is not None
            for j, i in enumerate(idx):
                dets, _ = image_detections(
                    outputs, self.spec, j, self.nms, dataset.image_ids[i], got[j][1], self.mapping
                )
                detections += dets
        if self.spec.task == "classification":
            return 100.0 * (meter.result()["top1"] or 0.0)
        ids = [dataset.image_ids[i] for i in order]
        return 100.0 * (coco_map(dataset.coco, detections, ids)["map"] or 0.0)


def _labels(dataset: Any, idx: list[int]) -> np.ndarray:
    if isinstance(dataset, NpzDataset):
        return dataset.labels[idx]
    return np.asarray([dataset.samples[i][1] for i in idx])


def open_validation(
    data: str | Path,
    spec: InputSpec,
    model_info: dict[str, Any],
    *,
    batch: int = 1,
    label: str = "the model",
) -> AccuracyValidation:
    """The data at ``data`` (what ``edgecv eval --data`` takes) prepared for the model ``spec`` and
    ``model_info`` describe. Data the model cannot be scored on (another task, other classes)
    raises a :class:`~edgecv.evaluate.datasets.DatasetError` before anything is computed."""
    dataset = open_dataset(data)
    if isinstance(dataset, CocoDataset):
        dataset.check_images()
    check_task(spec, dataset, label)
    classes = model_info.get("num_classes")
    classes = classes if isinstance(classes, int) and not isinstance(classes, bool) else None
    inputs = PreparedInputs(dataset, spec)
    if spec.task == "classification":
        check_classes(label, spec, dataset, classes, 0, False)
        return AccuracyValidation(inputs, spec, batch)
    assert isinstance(dataset, CocoDataset)
    background = background_class(spec, model_info, None)
    offset = 1 if background == 0 else 0
    check_classes(label, spec, dataset, classes, offset, False)
    nms = None
    if spec.output("num_dets") is None:
        post = model_info.get("postprocess") or {}
        nms = NmsSettings(iou_thres=float(post.get("iou_thres", 0.5)), background=background)
    return AccuracyValidation(inputs, spec, batch, CategoryMapping.default(dataset.category_ids, offset), nms)
