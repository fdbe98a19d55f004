"""``edgecv predict``: run any artifact on pictures. Classifiers give their top-5 classes;
detectors give boxes in original-image pixels, drawn onto a copy of each picture.

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

PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
    (128, 0, 0),
]


@dataclass
class Prediction:
    image: str
    width: int
    height: int
    task: str
    classes: list[dict[str, Any]] = field(default_factory=list)  # classifiers: top-5
    detections: list[dict[str, Any]] = field(default_factory=list)  # detectors, original pixels
    drawn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"image": self.image, "width": self.width, "height": self.height, "task": self.task}
        if self.task == "classification":
            d["top5"] = self.classes
        else:
            d["detections"] = self.detections
            d["drawn"] = self.drawn
        return d


def _label(index: int, names: Sequence[str] | None) -> str:
    return names[index] if names and 0 <= index < len(names) else str(index)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _draw(img: np.ndarray, dets: list[dict[str, Any]], out: Path) -> None:
    from PIL import Image, ImageDraw

    picture = Image.fromarray(img)
    draw = ImageDraw.Draw(picture)
    width = max(2, round(min(picture.size) / 200))
    for det in dets:
        colour = PALETTE[det["label"] % len(PALETTE)]
        x1, y1, x2, y2 = det["box"]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        text = f"{det['name']} {det['score']:.2f}"
        tx, ty = x1, max(0, y1 - 12)
        bbox = draw.textbbox((tx, ty), text)
        draw.rectangle(bbox, fill=colour)
        draw.text((tx, ty), text, fill=(255, 255, 255))
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)


class Predictor:
    """An artifact (or a zoo model) with its preprocessing, ready for pictures."""

    def __init__(self, target: str | Path, *, backend: str | None = None, precision: str | None = None):
        from edgecv.artifact_metadata import input_spec_of, model_info_of
        from edgecv.runtime import load

        path = Path(target).expanduser()
        if path.is_dir():
            path = _primary_artifact(path)
        if path.exists():
            self.spec = input_spec_of(path)
            self.model_info = model_info_of(path)
            if self.spec is None:
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
            self.model_info = dict(getattr(model, "model_config", {}) or {})
            if model is not None and hasattr(model, "background_class"):
                self.model_info["background_class"] = model.background_class
            if self.spec is None:
                raise ArtifactError(f"{target}: no input spec to preprocess pictures with")
        self.class_names = self.model_info.get("class_names")
        low, high = self.runtime.batch_range
        self.batch = low if high == low else 1

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def predict(self, image: str | Path, out_dir: Path | None = None) -> Prediction:
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
            logits = np.asarray(
                outputs[self.spec.output("logits").name if self.spec.output("logits") else next(iter(outputs))]
            )[0]
            probs = _softmax(logits.astype(np.float64))
            for i in np.argsort(-probs)[:5]:
                pred.classes.append(
                    {"label": int(i), "name": _label(int(i), self.class_names), "probability": float(probs[i])}
                )
            return pred
        boxes, scores, labels = self._detections(outputs)
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
        if out_dir is not None:
            target = Path(out_dir) / f"{Path(image).stem}.pred.png"
            _draw(img, pred.detections, target)
            pred.drawn = str(target)
        return pred

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
        class_scores = np.asarray(outputs[spec.output("class_scores").name])[0]
        # A --no-nms artifact: the per-class NMS `edgecv eval` runs, at the thresholds it was exported with.
        settings = NmsSettings(
            conf_thres=float(post.get("conf_thres", 0.25)),
            iou_thres=float(post.get("iou_thres", 0.45)),
            max_det=int(post.get("max_det", 100)),
            pre_nms_topk=max(1, class_scores.size),  # every candidate, as the graph's NMS would see
            background=self.model_info.get("background_class"),
        )
        return nms_numpy(np.asarray(outputs[spec.output("boxes").name])[0], class_scores, settings)


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
) -> list[Prediction]:
    files = [Path(i).expanduser() for i in images]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InvalidOptionError(f"no such image: {', '.join(missing)}")
    with Predictor(target, backend=backend, precision=precision) as predictor:
        out = Path(out_dir) if out_dir is not None else None
        return [predictor.predict(f, out) for f in files]
