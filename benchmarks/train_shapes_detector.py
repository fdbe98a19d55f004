"""Regenerate ``tests/fixtures/yolox_nano_shapes.pth``: YOLOX-nano (4 classes, 160×160) trained on
``edgecv data shapes``, the detector of the INT8 detection accuracy test
(tests/evaluate/test_trained_detector.py).

The checkpoint is committed, as the digits one is, because training follows the CPU's float
kernels: a test that trained its own detector would test the machine as much as the quantizer.
Seeded, a rerun with the same thread count on the same machine and torch writes the same weights;
another machine may write slightly different ones. One thread by default: on 2 cores another job
keeps busy, two threads wait on each other at every operator (an epoch took 74 s instead of 12 s),
while one runs at 18 s an epoch whatever the neighbours do; the committed fixture took 651 s for 30
epochs (its JSON records the figures: val mAP@.5 0.940, mAP@[.5:.95] 0.739 on 400 pictures).

Training preprocessing is deployment preprocessing: every picture goes through
:func:`edgecv.preprocess.preprocess_with_transform` with the model's own ``InputSpec`` (BGR, 0..255,
centred letterbox padded with 114), and ground-truth boxes through the returned transform.

The loss is YOLOX's without SimOTA: an anchor point is positive for a ground-truth box when its
cell centre lies inside the box and within 2.5 strides of the box centre (FCOS-style centre
sampling; an anchor claimed by two boxes takes the smaller one, and a box too small to hold any
cell centre takes the stride-8 cell nearest its centre). Objectness: BCE on every anchor, target 1
on positives; classes: BCE on positives; boxes: 1 − GIoU on positives, weight 5 (YOLOX's
``reg_weight``). All normalised by the number of positives.

    python benchmarks/train_shapes_detector.py [--epochs N] [--data DIR] [--out tests/fixtures/...pth]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "yolox_nano_shapes.pth"
DATA_SEED = 0
IMAGES = 2000  # generate_shapes puts a fifth in val: 1600 train, 400 val
SIZE = 160
RESOLUTION = 160
NUM_CLASSES = 4
EPOCHS = 30
BATCH = 16
LR = 3e-3
WEIGHT_DECAY = 5e-4
WARMUP_STEPS = 100
SEED = 0
THREADS = 1
CENTER_RADIUS = 2.5
REG_WEIGHT = 5.0
# The export's NMS IoU threshold (DetectionOptions' default), so the script's mAP is the artifacts'.
NMS_IOU = 0.45


def build_model():
    from edgecv.models import create_model

    return create_model("yolox", num_classes=NUM_CLASSES, resolution=RESOLUTION, variant="nano", settle_batchnorm=False)


def load_split(root: Path, split: str, spec) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Pictures of ``split`` preprocessed for ``spec`` (uint8: the spec is 0..255 with no
    normalisation, so they are exact), with their boxes in input pixels and label indices (the
    i-th category by id, as ``edgecv eval``'s default mapping)."""
    from edgecv.preprocess import preprocess_with_transform

    coco = json.loads((root / split / "annotations.json").read_text())
    label_of = {cid: i for i, cid in enumerate(sorted(c["id"] for c in coco["categories"]))}
    per_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a)
    pixels, boxes, labels = [], [], []
    for info in sorted(coco["images"], key=lambda i: i["id"]):
        x, transform = preprocess_with_transform(root / split / "images" / info["file_name"], spec)
        assert np.array_equal(x, np.rint(x)) and x.min() >= 0 and x.max() <= 255
        pixels.append(x.astype(np.uint8))
        anns = per_image.get(info["id"], [])
        xywh = np.asarray([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
        boxes.append(transform.boxes_to_input(xyxy).astype(np.float32))
        labels.append(np.asarray([label_of[a["category_id"]] for a in anns], np.int64))
    return np.stack(pixels), boxes, labels


def anchor_grid(model, height: int, width: int):
    """Per anchor point, in the order decode flattens them: cell index (x, y) and stride."""
    import torch

    cells, strides = [], []
    for stride in model.decode.strides:
        h, w = height // stride, width // stride
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        cells.append(torch.stack((xs, ys), -1).reshape(-1, 2).float())
        strides.append(torch.full((h * w,), float(stride)))
    return torch.cat(cells), torch.cat(strides)


def assign(gt: "torch.Tensor", centres: "torch.Tensor", strides: "torch.Tensor") -> "torch.Tensor":
    """Index of the ground-truth box each anchor learns (−1: background)."""
    import torch

    n = gt.shape[0]
    match = torch.full((centres.shape[0],), -1, dtype=torch.long)
    if n == 0:
        return match
    cx, cy = centres[:, 0:1], centres[:, 1:2]  # [A, 1]
    x1, y1, x2, y2 = (gt[:, k][None] for k in range(4))  # [1, G]
    in_box = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
    gcx, gcy = (x1 + x2) / 2, (y1 + y2) / 2
    r = CENTER_RADIUS * strides[:, None]
    in_centre = ((cx - gcx).abs() < r) & ((cy - gcy).abs() < r)
    candidate = in_box & in_centre  # [A, G]
    finest = strides == strides.min()
    for g in range(n):
        if not candidate[:, g].any():
            d = (cx[:, 0] - gcx[0, g]) ** 2 + (cy[:, 0] - gcy[0, g]) ** 2
            d[~finest] = math.inf
            candidate[int(d.argmin()), g] = True
    area = ((x2 - x1) * (y2 - y1)).expand_as(candidate)
    area = torch.where(candidate, area, torch.full_like(area, math.inf))
    smallest = area.argmin(1)
    return torch.where(candidate.any(1), smallest, match)


def giou(a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
    """Generalised IoU of matching rows of two [K, 4] x1y1x2y2 boxes."""
    import torch

    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    iou = inter / union.clamp(min=1e-6)
    cw = torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])
    ch = torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])
    hull = (cw * ch).clamp(min=1e-6)
    return iou - (hull - union) / hull


def yolox_loss(raw, gt_boxes, gt_labels, cells, strides, num_classes):
    """(total, parts) of the loss described in the module docstring for one batch."""
    import torch
    import torch.nn.functional as F

    p = torch.cat([o.flatten(2).transpose(1, 2) for o in raw], 1)  # [N, A, 5 + C]
    xy = (p[..., :2] + cells) * strides[:, None]
    wh = torch.exp(p[..., 2:4].clamp(max=10.0)) * strides[:, None]
    boxes = torch.cat((xy - wh / 2, xy + wh / 2), -1)
    centres = (cells + 0.5) * strides[:, None]
    obj_target = torch.zeros(p.shape[:2])
    pred_fg, target_fg, logits_fg, labels_fg = [], [], [], []
    for i, (gt, lab) in enumerate(zip(gt_boxes, gt_labels)):
        match = assign(gt, centres, strides)
        fg = match >= 0
        obj_target[i, fg] = 1.0
        pred_fg.append(boxes[i, fg])
        target_fg.append(gt[match[fg]])
        logits_fg.append(p[i, fg, 5:])
        labels_fg.append(lab[match[fg]])
    num_fg = max(1.0, float(obj_target.sum()))
    pred, target = torch.cat(pred_fg), torch.cat(target_fg)
    cls_target = F.one_hot(torch.cat(labels_fg), num_classes).float()
    loss_box = (1.0 - giou(pred, target)).sum() / num_fg
    loss_obj = F.binary_cross_entropy_with_logits(p[..., 4], obj_target, reduction="sum") / num_fg
    loss_cls = F.binary_cross_entropy_with_logits(torch.cat(logits_fg), cls_target, reduction="sum") / num_fg
    total = REG_WEIGHT * loss_box + loss_obj + loss_cls
    return total, {"box": loss_box.item(), "obj": loss_obj.item(), "cls": loss_cls.item()}


def flip(x, boxes, horizontal: bool):
    """Mirror a CHW picture and its x1y1x2y2 boxes (the letterbox is centred, so its padding
    mirrors onto itself)."""
    import torch

    b = boxes.clone()
    if horizontal:
        w = x.shape[-1]
        x = torch.flip(x, (-1,))
        b[:, [0, 2]] = w - boxes[:, [2, 0]]
    else:
        h = x.shape[-2]
        x = torch.flip(x, (-2,))
        b[:, [1, 3]] = h - boxes[:, [3, 1]]
    return x, b


def evaluate_map(model, root: Path, split: str = "val", limit: int | None = None) -> dict:
    """COCO mAP of ``model`` (eval mode, float) on ``split``, decoded and NMSed as the exported
    artifacts are (score > 0.001, per-class NMS at IoU 0.45, 100 per image)."""
    import contextlib
    import io

    import torch
    from pycocotools.coco import COCO

    from edgecv.evaluate.metrics import CategoryMapping, NmsSettings, coco_map, coco_results, nms_numpy
    from edgecv.preprocess import preprocess_with_transform

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / split / "annotations.json"))
    ids = sorted(gt.getImgIds())[:limit]
    mapping = CategoryMapping.default(gt.getCatIds())
    settings = NmsSettings(conf_thres=0.001, iou_thres=NMS_IOU, max_det=100)
    detections = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(ids), 32):
            chunk = ids[start : start + 32]
            got = [
                preprocess_with_transform(root / split / "images" / gt.imgs[i]["file_name"], model.input_spec)
                for i in chunk
            ]
            boxes, scores = model.decode(model.forward_raw(torch.from_numpy(np.stack([g[0] for g in got]))))
            for j, image_id in enumerate(chunk):
                b, s, lab = nms_numpy(boxes[j].numpy(), scores[j].numpy(), settings)
                dets, _ = coco_results(image_id, got[j][1].boxes_to_original(b), s, lab, mapping)
                detections += dets
    return coco_map(gt, detections, ids)


def train(model, pixels, boxes, labels, epochs: int, log=print, on_epoch=None) -> None:
    import torch

    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    decay, no_decay = [], []
    for param in model.parameters():
        (decay if param.dim() > 1 else no_decay).append(param)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}], lr=LR
    )
    steps_per_epoch = len(pixels) // BATCH
    total = epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        if step < WARMUP_STEPS:
            return LR * (step + 1) / WARMUP_STEPS
        t = (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS)
        return LR * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

    cells, strides = anchor_grid(model, RESOLUTION, RESOLUTION)
    gt_boxes = [torch.from_numpy(b) for b in boxes]
    gt_labels = [torch.from_numpy(lab) for lab in labels]
    step = 0
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(pixels))
        started, parts_sum = time.perf_counter(), {"box": 0.0, "obj": 0.0, "cls": 0.0}
        for k in range(steps_per_epoch):
            idx = order[k * BATCH : (k + 1) * BATCH]
            flips = rng.integers(0, 4, len(idx))  # none, horizontal, vertical, both
            xs, bs, ls = [], [], []
            for i, f in zip(idx, flips):
                x, b = torch.from_numpy(pixels[i]).float(), gt_boxes[i]
                if f & 1:
                    x, b = flip(x, b, horizontal=True)
                if f & 2:
                    x, b = flip(x, b, horizontal=False)
                xs.append(x)
                bs.append(b)
                ls.append(gt_labels[i])
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            loss, parts = yolox_loss(model.forward_raw(torch.stack(xs)), bs, ls, cells, strides, model.num_classes)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            step += 1
            for key in parts_sum:
                parts_sum[key] += parts[key]
        mean = {k: round(v / steps_per_epoch, 4) for k, v in parts_sum.items()}
        log(
            f"epoch {epoch + 1}/{epochs}: loss box {mean['box']} obj {mean['obj']} cls {mean['cls']} "
            f"({time.perf_counter() - started:.0f} s)"
        )
        if on_epoch is not None:
            on_epoch(epoch + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--images", type=int, default=IMAGES, help="pictures generated (a fifth go to val)")
    parser.add_argument(
        "--data", type=Path, default=None, help="where to write the data set (default: a temporary folder)"
    )
    parser.add_argument("--out", type=Path, default=FIXTURE)
    parser.add_argument("--eval-every", type=int, default=0, help="also report val mAP every N epochs")
    parser.add_argument(
        "--threads",
        type=int,
        default=THREADS,
        help="torch threads (1: see the module docstring; the thread count changes the weights)",
    )
    args = parser.parse_args(argv)

    import torch

    from edgecv.evaluate.shapes import generate_shapes
    from edgecv.models.weights import save_weights
    from edgecv.sysinfo import machine_info

    torch.set_num_threads(args.threads)
    # Denormal floats (tiny late-training gradients) are slow on x86; flushing them changes no
    # figure that matters.
    torch.set_flush_denormal(True)
    torch.manual_seed(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp) / "shapes"
        t0 = time.perf_counter()
        summary = generate_shapes(root, images=args.images, size=SIZE, seed=DATA_SEED)
        model = build_model()
        pixels, boxes, labels = load_split(root, "train", model.input_spec)
        print(
            f"data: {summary.images} pictures, {summary.objects} objects ({time.perf_counter() - t0:.0f} s)", flush=True
        )

        def on_epoch(epoch: int) -> None:
            if args.eval_every and epoch % args.eval_every == 0 and epoch < args.epochs:
                m = evaluate_map(model, root)
                print(f"  val mAP@.5 {m['map50']:.4f}  mAP@[.5:.95] {m['map']:.4f}", flush=True)

        t0 = time.perf_counter()
        train(model, pixels, boxes, labels, args.epochs, log=lambda s: print(s, flush=True), on_epoch=on_epoch)
        train_s = time.perf_counter() - t0
        model.eval()
        metrics = evaluate_map(model, root)
        print(
            f"val ({summary.images['val']} pictures, {summary.objects['val']} objects): "
            f"mAP@.5 {metrics['map50']:.4f}  mAP@[.5:.95] {metrics['map']:.4f}  (training {train_s:.0f} s)"
        )
    out = save_weights(model, args.out)
    machine = machine_info()
    record = {
        "model": {"name": "yolox", "variant": "nano", "num_classes": NUM_CLASSES, "resolution": RESOLUTION},
        "data": {
            "generator": "edgecv data shapes",
            "seed": DATA_SEED,
            "images": summary.images,
            "objects": summary.objects,
            "size": SIZE,
        },
        "training": {
            "epochs": args.epochs,
            "batch": BATCH,
            "optimizer": "AdamW",
            "lr": LR,
            "weight_decay": WEIGHT_DECAY,
            "warmup_steps": WARMUP_STEPS,
            "schedule": "cosine",
            "augmentation": "random horizontal/vertical flips",
            "seed": SEED,
            "threads": args.threads,
            "seconds": round(train_s, 1),
        },
        "val": {k: metrics[k] for k in ("map", "map50", "map75", "ar100", "images", "detections")},
        "machine": {
            **{k: machine.get(k) for k in ("cpu", "arch", "flags")},
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "script": "benchmarks/train_shapes_detector.py",
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
