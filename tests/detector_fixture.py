"""A tiny detector that follows the zoo's detector contract, for tests of the detection pipeline
that must not depend on a particular zoo family. Its boxes and scores depend on the picture, so a
photograph gives detections above the default threshold even with seeded random weights."""

from __future__ import annotations

import torch
from torch import nn

from edgecv.models.detection import DetectionOptions, Detector
from edgecv.models.spec import InputSpec, detection_outputs


class _Decode(nn.Module):
    def __init__(self, stride: int, size: int):
        super().__init__()
        self.stride, self.size = stride, size

    def forward(self, raw: torch.Tensor):
        n, ch, h, w = raw.shape
        raw = raw.permute(0, 2, 3, 1).reshape(n, h * w, ch)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=raw.dtype), torch.arange(w, dtype=raw.dtype), indexing="ij")
        grid = torch.stack([xs, ys], -1).reshape(1, h * w, 2)
        xy = (grid + raw[..., :2].sigmoid()) * self.stride
        wh = raw[..., 2:4].clamp(-3, 3).exp() * self.size
        boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
        scores = raw[..., 4:5].sigmoid() * raw[..., 5:].softmax(-1)
        return boxes, scores


class TinyDetector(Detector):
    background_class = None

    def __init__(self, num_classes: int = 3, size: int = 64, options: DetectionOptions | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, 2, 1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        self.head = nn.Conv2d(16, 5 + num_classes, 1)
        self.decode = _Decode(8, 16)
        self.input_spec = InputSpec(
            height=size,
            width=size,
            task="detection",
            resize="letterbox",
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            outputs=detection_outputs(True),
        )
        self.model_name = "tinydet"
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            self.head.bias[4] = 2.0  # confident objectness: detections above 0.25 on any picture
        self.configure_postprocess(options or DetectionOptions(conf_thres=0.25, max_det=20))
        self.eval()

    def forward_raw(self, x):
        return self.head(self.features(x))
