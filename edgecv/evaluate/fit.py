"""Whether an artifact and a data set fit: the input spec an artifact needs (from its manifest, its
stamped metadata, or inferred), its task, and its classes against the data set's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecv.models.spec import InputSpec, detection_outputs

from .datasets import ClassCountError, CocoDataset, ImageFolderDataset, NpzDataset, TaskMismatchError


def infer_spec(runtime: Any) -> InputSpec:
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


def stamped_metadata(source: Any) -> tuple[InputSpec | None, dict[str, Any]]:
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


def model_classes(spec: InputSpec, runtime: Any, model_info: dict[str, Any]) -> int | None:
    """Classes of the model's head (background included), from the artifact or the manifest."""
    meaning = "logits" if spec.task == "classification" else "class_scores"
    out = spec.output(meaning)
    if out is not None:
        info = next((o for o in runtime.outputs if o.name == out.name), None)
        if info is not None and info.shape and isinstance(info.shape[-1], int):
            return int(info.shape[-1])
    value = model_info.get("num_classes")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def background_class(spec: InputSpec, model_info: dict[str, Any], runtime: Any) -> int | None:
    for source in (model_info, spec.extra):
        if "background_class" in source:
            return source["background_class"]
    model = getattr(runtime, "model", None)  # the torch backend: the module says it
    return getattr(model, "background_class", None)


def check_task(spec: InputSpec, dataset: Any, label: str) -> None:
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


def check_classes(
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
