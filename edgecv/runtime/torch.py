"""PyTorch eager backend: the baseline every report compares against.

Runs an ``nn.Module``, a zoo model by name, the model a run folder was exported from (rebuilt from
its manifest), a weights file for a named zoo model, or a TorchScript archive. Calls run under
``torch.inference_mode``. ``threads`` calls ``torch.set_num_threads``, which is process-wide.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecv.errors import ArtifactError, BackendUnavailableError, InvalidOptionError
from edgecv.models.spec import InputSpec

from .base import Runtime, TensorInfo, require_file

# Manifest "model" keys that describe the export rather than being create_model arguments.
_MANIFEST_ONLY_KEYS = {
    "weights_sha256",
    "random_weights",
    "custom",
    "class",
    "state_sha256",
    # detectors: what the manifest records about the task rather than how to build the model
    "task",
    "background_class",
    "float_scopes",
    "class_names",
}


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def model_from_manifest(run_dir: Path) -> tuple[nn.Module, InputSpec, str]:
    """Rebuild the zoo model a run folder was exported from (with its weights, if it had any)."""
    from edgecv.models.registry import create_model
    from edgecv.runfolder import read_manifest

    manifest = read_manifest(run_dir)
    info = dict(manifest.get("model") or {})
    if info.get("custom"):
        raise ArtifactError(
            f"{run_dir} was exported from your own nn.Module ({info.get('class')}); "
            "pass that module to edgecv.runtime.load to run it in PyTorch"
        )
    name = info.pop("name", None)
    if not name:
        raise ArtifactError(f"the manifest in {run_dir} names no model")
    kwargs = {k: v for k, v in info.items() if k not in _MANIFEST_ONLY_KEYS}
    if isinstance(kwargs.get("postprocess"), dict):
        from edgecv.models.detection import DetectionOptions

        # the baked thresholds, so the PyTorch baseline runs the post-processing the artifacts run
        kwargs["postprocess"] = DetectionOptions.from_dict(kwargs["postprocess"])
    model = create_model(name, **kwargs)
    spec = InputSpec.from_dict(manifest["input_spec"]) if manifest.get("input_spec") else model.input_spec
    return model, spec, name


class TorchRuntime(Runtime):
    """Options: ``input_spec`` (needed for an ``nn.Module`` without one, and for TorchScript);
    ``model`` (the zoo name a ``.pt``/``.pth`` state_dict belongs to); zoo options such as
    ``width_mult``, ``resolution``, ``num_classes`` when building a zoo model."""

    backend = "torch"
    options = None  # zoo options are checked by create_model

    def _load_impl(self, source: Any, precision: str | None, input_spec: InputSpec | None = None, **zoo: Any) -> None:
        # Before building the model: a missing GPU is the user's to hear about first.
        self._torch_device = self._pick_device()
        model, spec = self._resolve(source, input_spec, zoo)
        if spec is None:
            raise InvalidOptionError(
                f"{self.name} carries no input_spec; pass input_spec=edgecv.models.InputSpec(...) to load()"
            )
        self.device = str(self._torch_device)
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self.threads = torch.get_num_threads()
        self._model = model.eval().to(self._torch_device)
        self._weights_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
        self.precision = "fp32"
        self._require_fixed_precision(precision)
        self.input_spec = spec
        self.inputs = [
            TensorInfo(spec.input_name, (None, spec.channels, spec.height, spec.width), np.dtype(np.float32))
        ]
        # Output shapes are only known after a call; no hidden inference at load time.
        self.outputs = [TensorInfo(name, None, np.dtype(np.float32)) for name in spec.output_names]

    def _resolve(
        self, source: Any, input_spec: InputSpec | None, zoo: dict[str, Any]
    ) -> tuple[nn.Module, InputSpec | None]:
        if isinstance(source, nn.Module):
            if zoo:
                raise InvalidOptionError(f"options {', '.join(zoo)} apply to zoo model names, not to an nn.Module")
            self.name = getattr(source, "model_name", None) or type(source).__name__
            return source, input_spec or getattr(source, "input_spec", None)
        path = Path(source).expanduser()
        if path.is_dir():
            if zoo:
                raise InvalidOptionError(
                    f"options {', '.join(zoo)} do not apply to a run folder (its manifest fixes the model)"
                )
            model, spec, name = model_from_manifest(path)
            self.path, self.name = path, f"pytorch ({name})"
            return model, input_spec or spec
        from edgecv.models.registry import create_model

        if path.suffix.lower() in (".pt", ".pth"):
            path = require_file(path, (".pt", ".pth"))
            self.path, self.name = path, path.name
            if _is_torchscript(path):
                if zoo:
                    raise InvalidOptionError(
                        f"{path.name} is a TorchScript archive; options {', '.join(zoo)} do not apply"
                    )
                return torch.jit.load(str(path), map_location="cpu"), input_spec
            name = zoo.pop("model", None)
            if name is None:
                raise InvalidOptionError(
                    f"{path.name} holds weights, not an architecture: name the zoo model, e.g. load(path, model='mobilenetv2')"
                )
            model = create_model(name, weights=path, **zoo)
            return model, input_spec or model.input_spec
        model = create_model(str(source), **zoo)
        self.name = model.model_name
        return model, input_spec or model.input_spec

    @property
    def model(self) -> nn.Module:
        """The module that runs, on :attr:`device` (read-only): what it says of itself
        (``input_spec``, ``background_class``, ``model_config``) is the model's own word."""
        return self._model

    @property
    def size_bytes(self) -> int:
        """Bytes of the parameters and buffers: what an FP32 checkpoint of the model weighs."""
        return self._weights_bytes

    def _pick_device(self) -> torch.device:
        try:
            device = torch.device(self.device or "cpu")
        except RuntimeError:
            raise InvalidOptionError(f"not a PyTorch device: {self.device!r} (use cpu or cuda[:N])") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("torch on cuda", None, "this PyTorch build or machine has no CUDA device")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidOptionError(f"{device} asked for, this machine has {torch.cuda.device_count()} CUDA device(s)")
        return device

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.from_numpy(feed[self.inputs[0].name]).to(self._torch_device)
        with torch.inference_mode():
            out = self._model(x)
        if isinstance(out, dict):
            return {k: v.detach().cpu().numpy() for k, v in out.items()}
        outs = out if isinstance(out, (tuple, list)) else (out,)
        # Outputs beyond the InputSpec's names are kept, named by position, rather than dropped.
        names = [info.name for info in self.outputs] + [f"output_{i}" for i in range(len(self.outputs), len(outs))]
        return {name: o.detach().cpu().numpy() for name, o in zip(names, outs)}

    def _close_impl(self) -> None:
        del self._model
