"""``edgecv predict``: run any artifact on pictures (files, folders, glob patterns). Classifiers
give their top-5 classes; detectors give boxes in original-image pixels above a display threshold,
drawn onto a copy of each picture. Class names are the ones the artifact records (``export
--labels``), else label indices.

The artifact's own input spec (stamped in the file, else its run folder's manifest) decides the
preprocessing, so what predict feeds is exactly what export verified and calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecv.errors import ArtifactError, InvalidOptionError

from .metrics import NmsSettings, nms_numpy
from .pictures import draw_detections, drawn_paths, expand_images

# The lowest score predict shows by default (ShowSettings says why).
DISPLAY_CONF = 0.25


@dataclass
class Prediction:
    image: str
    width: int
    height: int
    task: str
    classes: list[dict[str, Any]] = field(default_factory=list)  # classifiers: top-5
    detections: list[dict[str, Any]] = field(default_factory=list)  # detectors, original pixels
    drawn: str | None = None
    conf: float | None = None  # detectors: the thresholds the detections shown passed
    iou: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"image": self.image, "width": self.width, "height": self.height, "task": self.task}
        if self.task == "classification":
            d["top5"] = self.classes
        else:
            d["detections"] = self.detections
            d["conf"], d["iou"] = self.conf, self.iou
            d["drawn"] = self.drawn
        return d


def _label(index: int, names: Sequence[str] | None) -> str:
    return names[index] if names and 0 <= index < len(names) else str(index)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class Predictor:
    """An artifact (or a zoo model) with its preprocessing, ready for pictures.

    ``conf``, ``iou`` and ``classes`` choose which detections are shown (see :class:`ShowSettings`);
    ``classes`` also narrows a classifier's top-5.
    """

    def __init__(
        self,
        target: str | Path,
        *,
        backend: str | None = None,
        precision: str | None = None,
        conf: float | None = None,
        iou: float | None = None,
        classes: Sequence[str | int] | None = None,
    ):
        from edgecv.artifact_metadata import input_spec_of, model_info_of
        from edgecv.runtime import load

        path = Path(target).expanduser()
        if path.is_dir():
            path = _primary_artifact(path)
        if path.exists():
            self.spec = input_spec_of(path)
            self.model_info = model_info_of(path)
            if self.spec is None:
                _refuse_unreadable(path)
                raise ArtifactError(
                    f"{path} carries no input spec (it was not written by edgecv export, and no run folder "
                    "manifest lists it): predict cannot know how to preprocess a picture for it"
                )
            self.runtime = load(path, backend=backend, precision=precision)
        else:
            # a zoo model name runs in PyTorch; a path that does not exist is refused as such
            self.runtime = load(str(target), backend=backend)
            model = getattr(self.runtime, "model", None)
            self.spec = getattr(model, "input_spec", None) or getattr(self.runtime, "input_spec", None)
            self.model_info = _zoo_model_info(model)
            if self.spec is None:
                raise ArtifactError(f"{target}: no input spec to preprocess pictures with")
        self.class_names = self.model_info.get("class_names")
        low, high = self.runtime.batch_range
        self.batch = low if high == low else 1
        try:
            self.show = self._show_settings(conf, iou, classes)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _show_settings(self, conf: float | None, iou: float | None, classes: Sequence[str | int] | None):
        num_classes = len(self.class_names) if self.class_names else self.model_info.get("num_classes")
        wanted = resolve_classes(classes, self.class_names, num_classes)
        if self.spec.task == "classification":
            if conf is not None or iou is not None:
                raise InvalidOptionError("--conf and --iou apply to detectors; this artifact is a classifier")
            return ShowSettings(conf=0.0, iou=None, classes=wanted)
        post = self.model_info.get("postprocess") or {}
        in_graph = self.spec.output("num_dets") is not None
        return ShowSettings(conf=_conf(conf, post, in_graph), iou=_iou(iou, post, in_graph), classes=wanted)

    def predict(self, image: str | Path, drawn: Path | None = None) -> Prediction:
        """Run one picture; detectors' boxes are drawn onto a copy written to ``drawn``."""
        from edgecv.preprocess import UnreadableImage, load_image, preprocess_with_transform

        try:
            img = load_image(image)
        except UnreadableImage as exc:
            raise InvalidOptionError(f"cannot read {image}: not an image ({exc.__cause__ or exc})") from None
        x, transform = preprocess_with_transform(img, self.spec.with_batch(1))
        batch = np.repeat(x[None], self.batch, axis=0).astype(np.float32)
        outputs = self.runtime.infer(batch)
        pred = Prediction(str(image), img.shape[1], img.shape[0], self.spec.task)
        if self.spec.task == "classification":
            pred.classes = self._top5(outputs)
            return pred
        pred.conf, pred.iou = self.show.conf, self.show.iou
        boxes, scores, labels = self._shown(*self._detections(outputs))
        boxes = transform.boxes_to_original(boxes)
        for box, score, label in zip(boxes, scores, labels):
            pred.detections.append(
                {
                    "label": int(label),
                    "name": _label(int(label), self.class_names),
                    "score": float(score),
                    "box": [round(float(v), 2) for v in box],
                }
            )
        if drawn is not None:
            draw_detections(img, pred.detections, drawn)
            pred.drawn = str(drawn)
        return pred

    def _top5(self, outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        logits_out = self.spec.output("logits")
        logits = np.asarray(outputs[logits_out.name if logits_out else next(iter(outputs))])[0]
        probs = _softmax(logits.astype(np.float64))
        ranked = [int(i) for i in np.argsort(-probs) if self.show.classes is None or int(i) in self.show.classes]
        return [{"label": i, "name": _label(i, self.class_names), "probability": float(probs[i])} for i in ranked[:5]]

    def _shown(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray):
        keep = scores >= self.show.conf
        if self.show.classes is not None:
            keep &= np.isin(labels, sorted(self.show.classes))
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if self.show.iou is not None and self.spec.output("num_dets") is not None:
            # The graph's detections again through `edgecv eval`'s per-class NMS at --iou: each
            # detection is one candidate scored for its own class only.
            n = len(scores)
            class_scores = np.full((n, int(labels.max(initial=-1)) + 1), -1.0, np.float32)
            class_scores[np.arange(n), labels] = scores
            settings = NmsSettings(conf_thres=-0.5, iou_thres=self.show.iou, max_det=max(1, n), pre_nms_topk=max(1, n))
            boxes, scores, labels = nms_numpy(boxes, class_scores, settings)
        return boxes, scores, labels

    def _detections(self, outputs: dict[str, np.ndarray]):
        spec = self.spec
        if spec.output("num_dets") is not None:
            k = int(np.asarray(outputs[spec.output("num_dets").name]).reshape(-1)[0])
            return (
                np.asarray(outputs[spec.output("boxes").name])[0][:k],
                np.asarray(outputs[spec.output("scores").name])[0][:k],
                np.asarray(outputs[spec.output("labels").name])[0][:k].astype(int),
            )
        post = self.model_info.get("postprocess") or {}
        class_scores = np.array(outputs[spec.output("class_scores").name][0], dtype=np.float32)
        if self.show.classes is not None:
            # Classes left out must not take places among the max_det kept.
            unwanted = [c for c in range(class_scores.shape[1]) if c not in self.show.classes]
            class_scores[:, unwanted] = -1.0
        # A --no-nms artifact: the per-class NMS `edgecv eval` runs, at --conf and --iou.
        settings = NmsSettings(
            conf_thres=self.show.conf,
            iou_thres=self.show.iou,
            max_det=int(post.get("max_det", 100)),
            pre_nms_topk=max(1, class_scores.size),  # every candidate, as the graph's NMS would see
            background=self.model_info.get("background_class"),
        )
        return nms_numpy(np.asarray(outputs[spec.output("boxes").name])[0], class_scores, settings)


@dataclass(frozen=True)
class ShowSettings:
    """Which detections predict shows.

    ``conf``: the lowest score shown. By default :data:`DISPLAY_CONF`, or the artifact's own
    threshold where that is higher: an export for mAP bakes in 0.001, which would cover a picture
    in boxes. With NMS in the graph it cannot go below the baked threshold (lower scores never
    leave the graph). ``iou``: with NMS in the graph, an extra class-wise NMS over its detections,
    at most the baked IoU (a box the graph suppressed cannot come back); None leaves them as they
    are. Without NMS in the graph (``--no-nms`` exports) it is the NMS IoU itself, the export's by
    default. ``classes``: the label indices shown (None: all).
    """

    conf: float
    iou: float | None
    classes: frozenset[int] | None


def _check_fraction(flag: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise InvalidOptionError(f"{flag} must be between 0 and 1, got {value:g}")


def _conf(conf: float | None, post: dict[str, Any], in_graph: bool) -> float:
    _check_fraction("--conf", conf)
    baked = float(post.get("conf_thres") or 0.0)
    if conf is None:
        return max(DISPLAY_CONF, baked)
    if in_graph and conf < baked:
        raise InvalidOptionError(
            f"--conf {conf:g} is below the score threshold {baked:g} baked into the artifact's NMS, which "
            f"outputs no lower score; re-export with --conf-thres {conf:g} to see them"
        )
    return conf


def _iou(iou: float | None, post: dict[str, Any], in_graph: bool) -> float | None:
    _check_fraction("--iou", iou)
    baked = post.get("iou_thres")
    if not in_graph:
        return iou if iou is not None else float(baked if baked is not None else 0.45)
    if iou is not None and baked is not None and iou > float(baked):
        raise InvalidOptionError(
            f"--iou {iou:g} is above the IoU threshold {float(baked):g} of the artifact's NMS, and boxes it "
            f"suppressed cannot come back; re-export with --iou-thres {iou:g} (or --no-nms)"
        )
    return iou


def resolve_classes(
    classes: Sequence[str | int] | None, names: Sequence[str] | None, num_classes: int | None
) -> frozenset[int] | None:
    """``--classes`` items (label indices or class names) as label indices; None keeps every class."""
    if not classes:
        return None
    return frozenset(_class_index(str(item).strip(), names, num_classes) for item in classes)


def _class_index(item: str, names: Sequence[str] | None, num_classes: int | None) -> int:
    if names and item in names:
        return list(names).index(item)
    if item.isdigit():
        index = int(item)
        if isinstance(num_classes, int) and index >= num_classes:
            raise InvalidOptionError(f"--classes {item}: the model's labels are 0 to {num_classes - 1}")
        return index
    if not names:
        raise InvalidOptionError(f"--classes {item}: the artifact names no classes; give label indices")
    shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
    raise InvalidOptionError(f"--classes {item}: no class of that name (the artifact's classes: {shown})")


def _zoo_model_info(model: Any) -> dict[str, Any]:
    info = dict(getattr(model, "model_config", {}) or {})
    if model is not None and hasattr(model, "background_class"):
        info["background_class"] = model.background_class
    options = getattr(model, "detection_options", None)
    if options is not None and "postprocess" not in info:
        info["postprocess"] = options.to_dict()
    return info


def _refuse_unreadable(path: Path) -> None:
    """A file that does not even parse is corrupt, not merely undescribed: say so, as `check` does."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".onnx":
            import onnx

            onnx.load(str(path), load_external_data=False)
        elif suffix == ".xml":
            import xml.etree.ElementTree as ET

            ET.parse(path)
    except Exception as exc:  # protobuf's DecodeError, ParseError and friends
        kind = "ONNX model" if suffix == ".onnx" else "OpenVINO IR"
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ArtifactError(f"{path} is not a readable {kind}: {reason}") from None


def _primary_artifact(run_dir: Path) -> Path:
    """A run folder's FP32 ONNX: what predict runs when handed the folder."""
    for candidate in ("model.onnx", "openvino/model.xml"):
        if (run_dir / candidate).is_file():
            return run_dir / candidate
    raise ArtifactError(f"{run_dir} holds no model.onnx: pass an artifact file")


def predict_images(
    target: str | Path,
    images: Sequence[str | Path],
    *,
    out_dir: str | Path | None = None,
    backend: str | None = None,
    precision: str | None = None,
    conf: float | None = None,
    iou: float | None = None,
    classes: Sequence[str | int] | None = None,
) -> list[Prediction]:
    """Run ``target`` on ``images`` (files, folders, glob patterns); see :class:`Predictor`."""
    out = Path(out_dir).expanduser() if out_dir is not None else None
    files = expand_images(images, skip=out)
    with Predictor(target, backend=backend, precision=precision, conf=conf, iou=iou, classes=classes) as predictor:
        if out is None or predictor.spec.task == "classification":
            return [predictor.predict(f) for f in files]
        return [predictor.predict(f, drawn) for f, drawn in zip(files, drawn_paths(files, out))]
