"""ImageNet top-1 accuracy as the papers published it, for the zoo's paper variants.

These figures stand beside measured latency labelled "published" and are never mixed with
accuracy measured by ``edgecv eval``: they are the authors' trained models on the ImageNet
validation set, not this sweep's weights. Only a point whose model, width multiplier, resolution,
variant and 1000 classes match a row of a paper's table gets one; a figure not read from a table
is left out rather than estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Published:
    top1: float  # percent
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"top1": self.top1, "source": self.source, "label": "published"}


_V1_T6 = "Howard et al. 2017, MobileNets, Table 6"
_V1_T7 = "Howard et al. 2017, MobileNets, Table 7"
_V2_T4 = "Sandler et al. 2018, MobileNetV2, Table 4"
_SV1_T2 = "Zhang et al. 2017, ShuffleNet, Table 2 (100 − top-1 error)"
_SV2_T8 = "Ma et al. 2018, ShuffleNet V2, Table 8 (100 − top-1 error)"
_V3_T3 = "Howard et al. 2019, Searching for MobileNetV3, Table 3"

# (model, width multiplier, resolution, variant items) → figure.
_TABLE: dict[tuple[str, float, int, tuple[tuple[str, Any], ...]], Published] = {
    ("mobilenetv1", 1.0, 224, ()): Published(70.6, _V1_T6),
    ("mobilenetv1", 0.75, 224, ()): Published(68.4, _V1_T6),
    ("mobilenetv1", 0.5, 224, ()): Published(63.7, _V1_T6),
    ("mobilenetv1", 0.25, 224, ()): Published(50.6, _V1_T6),
    ("mobilenetv1", 1.0, 192, ()): Published(69.1, _V1_T7),
    ("mobilenetv1", 1.0, 160, ()): Published(67.2, _V1_T7),
    ("mobilenetv1", 1.0, 128, ()): Published(64.4, _V1_T7),
    ("mobilenetv2", 1.0, 224, ()): Published(72.0, _V2_T4),
    ("mobilenetv2", 1.4, 224, ()): Published(74.7, _V2_T4),
    ("shufflenetv1", 1.0, 224, (("groups", 3),)): Published(67.4, _SV1_T2),
    ("shufflenetv1", 1.0, 224, (("groups", 8),)): Published(67.6, _SV1_T2),
    ("shufflenetv2", 0.5, 224, ()): Published(60.3, _SV2_T8),
    ("shufflenetv2", 1.0, 224, ()): Published(69.4, _SV2_T8),
    ("shufflenetv2", 1.5, 224, ()): Published(72.6, _SV2_T8),
    ("shufflenetv2", 2.0, 224, ()): Published(74.9, _SV2_T8),
    ("mobilenetv3", 1.0, 224, (("variant", "large"),)): Published(75.2, _V3_T3),
    ("mobilenetv3", 0.75, 224, (("variant", "large"),)): Published(73.3, _V3_T3),
    ("mobilenetv3", 1.0, 224, (("variant", "small"),)): Published(67.4, _V3_T3),
    ("mobilenetv3", 0.75, 224, (("variant", "small"),)): Published(65.4, _V3_T3),
}


def published_top1(
    model: str, width_mult: float, resolution: Any, variant: dict[str, Any], num_classes: int
) -> Published | None:
    """The paper's ImageNet top-1 for exactly this configuration, or None."""
    if num_classes != 1000:
        return None
    if isinstance(resolution, (list, tuple)):
        if len(resolution) != 2 or resolution[0] != resolution[1]:
            return None
        resolution = resolution[0]
    return _TABLE.get((model, round(float(width_mult), 4), int(resolution), tuple(sorted(variant.items()))))
