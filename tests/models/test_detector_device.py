"""Every tensor a detector makes in its forward pass lives on the input's device, so the detectors
run on a GPU in PyTorch.

Without a GPU, a tensor created without ``device=`` is caught by making the default device a
foreign one (``meta``) while the model and its input stay on the CPU: such a tensor lands on
``meta`` instead of following the input, and the recording mode below names the call that made it.
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

import edgecv
from edgecv.models.detection import DetectionOptions

# Small inputs where the strides allow; three classes keep the eager NMS loop short.
DETECTORS = [
    ("ssdlite", {}, "128x128"),
    ("yolov3-tiny", {}, "64x96"),
    ("yolox", {"variant": "nano"}, "64x96"),
]


class DeviceGuard(TorchFunctionMode):
    """Fails the first torch call whose tensor result is not on ``device``."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.device != self.device:
                raise AssertionError(
                    f"{getattr(func, '__name__', func)} made a tensor on {t.device}, not {self.device}"
                )
        return out


def _run_on_cpu_with_foreign_default(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.device("meta"), DeviceGuard(x.device), torch.inference_mode():
        return model(x)


@pytest.mark.parametrize("conf", [1.0, 0.0], ids=["no-detections", "detections"])
@pytest.mark.parametrize("name,options,resolution", DETECTORS, ids=[d[0] for d in DETECTORS])
def test_detector_tensors_follow_the_input_device(name, options, resolution, conf):
    torch.manual_seed(0)
    model = edgecv.create_model(
        name,
        num_classes=3,
        resolution=resolution,
        settle_batchnorm=False,
        postprocess=DetectionOptions(conf_thres=conf, max_det=4),
        **options,
    ).eval()
    spec = model.input_spec
    x = torch.rand(2, 3, spec.height, spec.width)
    num_dets, boxes, scores, labels = _run_on_cpu_with_foreign_default(model, x)
    assert all(t.device.type == "cpu" for t in (num_dets, boxes, scores, labels))
    assert num_dets.tolist() == ([0, 0] if conf == 1.0 else [4, 4])


def test_device_guard_catches_a_tensor_made_without_device():
    def careless(x: torch.Tensor) -> torch.Tensor:
        return x + torch.zeros(x.shape)

    x = torch.ones(2)
    with pytest.raises(AssertionError, match="zeros made a tensor on meta"):
        with torch.device("meta"), DeviceGuard(x.device):
            careless(x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_yolox_runs_in_pytorch_on_cuda():
    from edgecv.preprocess import photo_batch

    with edgecv.runtime.load("yolox", backend="torch", device="cuda", variant="nano", resolution=416) as rt:
        assert rt.device.startswith("cuda")
        x = photo_batch(rt.input_spec, 2)
        if x is None:
            x = torch.rand(2, 3, 416, 416).numpy()
        out = rt.infer(x)
    assert out["boxes"].shape == (2, 100, 4) and out["num_dets"].shape == (2,)
