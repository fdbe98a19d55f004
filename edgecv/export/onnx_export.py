"""PyTorch → ONNX (the raw graph, ``model.raw.onnx``), checked by onnx's checker and shape inference."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import onnx
import torch
from torch import nn

from edgecv.errors import BackendUnavailableError, InvalidOptionError, StageError
from edgecv.models.spec import InputSpec, unnamed_outputs

EXPORTERS = ("torchscript", "dynamo")
MIN_OPSET, MAX_OPSET = 13, 21


def validate_export_options(opset: int, batch: int, exporter: str) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InvalidOptionError(
            f"opset must be between {MIN_OPSET} and {MAX_OPSET} (Q/DQ per-channel needs ≥ 13), got {opset}"
        )
    if batch < 1:
        raise InvalidOptionError(f"batch must be ≥ 1, got {batch}")
    if exporter not in EXPORTERS:
        raise InvalidOptionError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise BackendUnavailableError(
            "dynamo exporter",
            "onnxscript",
            "--exporter dynamo needs the onnxscript package, which is not installed (or pip install "
            "'edgecv[dynamo]'; the default --exporter torchscript needs nothing more)",
        )


def name_outputs(model: nn.Module, spec: InputSpec) -> InputSpec:
    """``spec`` with every output of ``model`` named (``output0``, ``output1``, …) where ``spec``
    declares none and the module returns several tensors, so each one is exported and verified.

    Declared outputs are the user's: a count that disagrees with them is refused later, by the
    reference run, never renamed here."""
    if spec.declares_outputs:
        return spec
    outputs = _sample_outputs(model, spec)
    # Nested or non-tensor outputs are not exportable as they are: the reference run says so.
    if len(outputs) <= 1 or not all(isinstance(t, torch.Tensor) for t in outputs):
        return spec
    return spec.with_outputs(unnamed_outputs([tuple(t.shape) for t in outputs], spec.batch))


def _sample_outputs(model: nn.Module, spec: InputSpec) -> tuple[torch.Tensor, ...]:
    was_training = model.training
    try:
        # Eval mode: a training-mode pass would move BatchNorm statistics of the user's module.
        model.eval()
        param = next(model.parameters(), None)
        with torch.no_grad():
            out = model(torch.zeros(spec.shape, device=param.device if param is not None else "cpu"))
    finally:
        model.train(was_training)
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def export_onnx(
    model: nn.Module,
    spec: InputSpec,
    path: Path,
    *,
    opset: int = 17,
    batch: int = 1,
    dynamic_batch: bool = False,
    exporter: str = "torchscript",
) -> dict[str, Any]:
    """Export ``model`` to ``path``; returns facts for the manifest."""
    dummy = torch.randn(batch, spec.channels, spec.height, spec.width, generator=torch.Generator().manual_seed(0))
    input_names = [spec.input_name]
    output_names = list(spec.output_names)
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {input_names[0]: {0: "batch"}}
        dynamic_axes.update({o.name: {o.batch_axis: "batch"} for o in spec.output_specs})
    buf = io.BytesIO()
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs: dict[str, Any] = dict(
                input_names=input_names,
                output_names=output_names,
                opset_version=opset,
                do_constant_folding=True,
            )
            if exporter == "torchscript":
                torch.onnx.export(model, (dummy,), buf, dynamo=False, dynamic_axes=dynamic_axes, **kwargs)
                proto = onnx.load_from_string(buf.getvalue())
            else:
                dyn_shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
                with _quiet_dynamo():
                    program = torch.onnx.export(
                        model, (dummy,), dynamo=True, dynamic_shapes=dyn_shapes, verbose=False, **kwargs
                    )
                proto = program.model_proto
    except Exception as exc:  # the exporters raise many unrelated types; all mean "this stage failed"
        raise StageError("export", f"torch.onnx.export ({exporter}) failed: {type(exc).__name__}: {exc}") from exc
    proto.producer_name = "edgecv"
    try:
        onnx.checker.check_model(proto, full_check=True)
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except Exception as exc:
        raise StageError("export", f"the exported graph does not pass onnx's checker: {exc}") from exc
    onnx.save(proto, str(path))
    written = written_opset(proto)
    notes = []
    if written != opset:
        # The dynamo exporter writes opset 18 at least, and its down-conversion fails on some graphs.
        notes.append(
            f"asked for opset {opset}, the {exporter} exporter wrote opset {written}; the manifest records {written}"
        )
    return {
        "exporter": exporter,
        "opset": written,
        "opset_requested": opset,
        "warnings": notes,
        "nodes": len(proto.graph.node),
        "inputs": input_names,
        "outputs": output_names,
        "dynamic_batch": dynamic_batch,
        "batch": batch,
    }


def written_opset(proto: onnx.ModelProto) -> int | None:
    """The default-domain opset a graph declares (what was written, not what was asked for)."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


@contextlib.contextmanager
def _quiet_dynamo() -> Iterator[None]:
    """The dynamo exporter prints progress on stdout (which belongs to ``--json``) and logs a
    traceback when its optional opset down-conversion fails, on runs that then succeed."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
