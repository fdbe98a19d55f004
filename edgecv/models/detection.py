"""The detector contract: a base class every detector in the zoo derives from, and the
post-processing (per-class non-maximum suppression) that exports into the ONNX graph.

A detector is three parts, each a submodule with a fixed name because the ONNX node names follow
module paths and the INT8 stage keeps whole scopes in float by name:

* the network (backbone, neck, heads): everything before ``decode``; quantized in INT8;
* ``decode``: raw head outputs → ``boxes [N, A, 4]`` (x1, y1, x2, y2 in input pixels) and
  ``scores [N, A, C]`` (per-class probabilities); stays in float;
* ``postprocess``: :class:`MultiClassNMS`, or ``None`` for ``--no-nms``; stays in float.

NMS is ONNX ``NonMaxSuppression`` (ONNX Runtime and OpenVINO run it; TensorRT's ONNX parser maps
it to its NMS layer), emitted by a ``torch.autograd.Function`` whose eager ``forward`` computes the
same selection, so PyTorch and every artifact run the same post-processing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from edgecv.errors import InvalidOptionError
from edgecv.records import known_fields

from .spec import InputSpec, detection_outputs

# The module paths whose ONNX nodes stay in float in every INT8 artifact (DESIGN.md, Tasks).
FLOAT_SCOPES = ("decode", "postprocess")


@dataclass(frozen=True)
class DetectionOptions:
    """Post-processing baked into an exported detector (``--conf-thres`` … ``--no-nms``)."""

    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 100
    nms: bool = True
    agnostic: bool = False
    # Candidates kept per class before NMS (torchvision's SSD keeps 400); bounds NMS cost at low
    # thresholds. None keeps every anchor.
    pre_nms_topk: int | None = None

    def validate(self) -> "DetectionOptions":
        for flag, value in (("--conf-thres", self.conf_thres), ("--iou-thres", self.iou_thres)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not 0.0 <= value <= 1.0
            ):
                raise InvalidOptionError(f"{flag} must be a number in [0, 1], got {value!r}")
        if isinstance(self.max_det, bool) or not isinstance(self.max_det, int) or self.max_det <= 0:
            raise InvalidOptionError(f"--max-det must be a positive integer, got {self.max_det!r}")
        if self.pre_nms_topk is not None and (not isinstance(self.pre_nms_topk, int) or self.pre_nms_topk <= 0):
            raise InvalidOptionError(f"pre_nms_topk must be a positive integer, got {self.pre_nms_topk!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DetectionOptions":
        return cls(**known_fields(cls, d))


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in ``a [n, 4]`` with every box in ``b [m, 4]`` (any diagonal corner pair,
    as ONNX NonMaxSuppression's ``center_point_box=0`` takes them)."""
    a_lo, a_hi = torch.minimum(a[:, :2], a[:, 2:]), torch.maximum(a[:, :2], a[:, 2:])
    b_lo, b_hi = torch.minimum(b[:, :2], b[:, 2:]), torch.maximum(b[:, :2], b[:, 2:])
    lo = torch.maximum(a_lo[:, None], b_lo[None])
    hi = torch.minimum(a_hi[:, None], b_hi[None])
    inter = (hi - lo).clamp(min=0).prod(-1)
    area_a = (a_hi - a_lo).prod(-1)
    area_b = (b_hi - b_lo).prod(-1)
    union = area_a[:, None] + area_b[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def _greedy_nms(
    boxes: torch.Tensor, scores: torch.Tensor, max_out: int, iou_thres: float, score_thres: float
) -> torch.Tensor:
    """Indices kept for one (image, class), in descending score order.

    Follows ONNX Runtime's NonMaxSuppression: candidates need ``score > score_thres``; a box is
    suppressed by a kept one when their IoU is ``> iou_thres``; at most ``max_out`` per class."""
    cand = torch.nonzero(scores > score_thres).flatten()
    if cand.numel() == 0 or max_out <= 0:
        return cand[:0]
    order = cand[torch.argsort(scores[cand], descending=True, stable=True)]
    keep = []
    while order.numel() and len(keep) < max_out:
        i = order[0]
        keep.append(i)
        if order.numel() == 1:
            break
        ious = box_iou(boxes[i][None], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_thres]
    return torch.stack(keep)


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression``: boxes [N, A, 4], scores [N, C, A] → selected [K, 3] int64 rows of
    (batch, class, box)."""

    @staticmethod
    def forward(ctx, boxes, scores, max_out: int, iou_thres: float, score_thres: float):  # type: ignore[override]
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            # The exporter replaces this call by ``symbolic``; running the selection under the tracer
            # only costs time (minutes at a low threshold on an untrained model).
            return torch.zeros((1, 3), dtype=torch.int64, device=boxes.device)
        rows = []
        for b in range(boxes.shape[0]):
            for c in range(scores.shape[1]):
                keep = _greedy_nms(boxes[b], scores[b, c], max_out, iou_thres, score_thres)
                if keep.numel():
                    rows.append(torch.stack([torch.full_like(keep, b), torch.full_like(keep, c), keep], 1))
        if not rows:
            # On the boxes' device: the caller compares the selection with tensors made there.
            return torch.zeros((0, 3), dtype=torch.int64, device=boxes.device)
        return torch.cat(rows).to(torch.int64)

    @staticmethod
    def symbolic(g, boxes, scores, max_out: int, iou_thres: float, score_thres: float):
        return g.op(
            "NonMaxSuppression",
            boxes,
            scores,
            g.op("Constant", value_t=torch.tensor([max_out], dtype=torch.int64)),
            g.op("Constant", value_t=torch.tensor([iou_thres], dtype=torch.float32)),
            g.op("Constant", value_t=torch.tensor([score_thres], dtype=torch.float32)),
            center_point_box_i=0,
        )


class MultiClassNMS(nn.Module):
    """Per-class (or class-agnostic) NMS with fixed-shape outputs padded to ``max_det``.

    Input: ``boxes [N, A, 4]``, ``scores [N, A, C]``. ``background`` (a class index, SSD's 0) is
    dropped before NMS. Output: ``num_dets [N]`` int32, ``boxes [N, max_det, 4]``,
    ``scores [N, max_det]`` (0 where padded), ``labels [N, max_det]`` int32 (-1 where padded),
    detections sorted by score within each image.
    """

    def __init__(self, options: DetectionOptions, background: int | None = None):
        super().__init__()
        self.options = options.validate()
        self.background = background
        # The decoded boxes and class scores of the last eager call: export verification compares
        # them element-wise with the same tensors in the ONNX graph.
        self.last_inputs: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor):
        o = self.options
        if not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            self.last_inputs = (boxes.detach(), scores.detach())
        offset = 0
        if self.background is not None:
            if self.background != 0:
                raise ValueError("only background class 0 is supported")
            scores, offset = scores[:, :, 1:], 1
        scores_t = scores.transpose(1, 2)  # [N, C, A], the layout ONNX NMS takes
        if o.pre_nms_topk is not None and o.pre_nms_topk < scores_t.shape[2]:
            kth = scores_t.topk(o.pre_nms_topk, dim=2).values[:, :, -1:]
            scores_t = torch.where(scores_t >= kth, scores_t, torch.zeros_like(scores_t))
        if o.agnostic:
            scores_t, cls = scores_t.max(1, keepdim=True)
        boxes = boxes.contiguous()
        scores_t = scores_t.contiguous()
        sel = _NonMaxSuppression.apply(boxes, scores_t, o.max_det, float(o.iou_thres), float(o.conf_thres))
        b, c, i = sel[:, 0], sel[:, 1], sel[:, 2]
        det_scores = scores_t[b, c, i]
        labels = cls[b, 0, i] if o.agnostic else c
        det_boxes = boxes[b, i]
        # Scatter the flat selection into fixed [N, max_det] slots: a score matrix that is -1 where a
        # selection belongs to another image, padded with max_det columns of -1 so top-k always
        # has enough candidates, then top-k per image.
        batch_ids = torch.arange(boxes.shape[0], device=boxes.device, dtype=b.dtype)
        mine = b.unsqueeze(0) == batch_ids.unsqueeze(1)
        cand = torch.where(mine, det_scores.unsqueeze(0), torch.full_like(det_scores.unsqueeze(0), -1.0))
        pad_scores = torch.zeros_like(boxes[:, :1, 0]).expand(-1, o.max_det) - 1.0
        top, idx = torch.cat([cand, pad_scores], 1).topk(o.max_det, dim=1)
        valid = top >= 0
        all_boxes = torch.cat([det_boxes, torch.zeros_like(boxes[0, :1]).expand(o.max_det, 4)], 0)
        pad_labels = torch.zeros_like(boxes[0, :1, 0], dtype=labels.dtype).expand(o.max_det) - 1
        all_labels = torch.cat([labels + offset, pad_labels], 0)
        out_boxes = torch.where(valid.unsqueeze(-1), all_boxes[idx], torch.zeros_like(all_boxes[idx]))
        out_scores = torch.where(valid, top, torch.zeros_like(top))
        out_labels = torch.where(valid, all_labels[idx], torch.full_like(all_labels[idx], -1)).to(torch.int32)
        num_dets = valid.sum(1).to(torch.int32)
        return num_dets, out_boxes, out_scores, out_labels


class Detector(nn.Module):
    """Base of every zoo detector. A subclass builds its network, sets ``self.decode`` (a module
    mapping :meth:`forward_raw`'s output to boxes and per-class scores) and ``input_spec``, and
    declares ``num_classes`` (background included where the model has one) and
    ``background_class``."""

    task = "detection"
    num_classes: int
    background_class: int | None = None
    # Module paths kept in float in INT8 besides decode/postprocess (YOLO's prediction convs).
    extra_float_scopes: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.postprocess: MultiClassNMS | None = None
        self.detection_options = DetectionOptions()
        self.input_spec = InputSpec(task="detection", resize="resize", outputs=detection_outputs(True))

    @property
    def float_scopes(self) -> tuple[str, ...]:
        return (*self.extra_float_scopes, *FLOAT_SCOPES)

    def forward_raw(self, x: torch.Tensor) -> Any:
        raise NotImplementedError

    def forward(self, x: torch.Tensor):
        boxes, scores = self.decode(self.forward_raw(x))
        if self.postprocess is None:
            return boxes, scores
        return self.postprocess(boxes, scores)

    def configure_postprocess(self, options: DetectionOptions) -> "Detector":
        """Bake ``options`` into the model (and its declared outputs)."""
        options = options.validate()
        self.detection_options = options
        self.postprocess = MultiClassNMS(options, self.background_class) if options.nms else None
        self.input_spec = self.input_spec.with_outputs(detection_outputs(options.nms))
        return self
