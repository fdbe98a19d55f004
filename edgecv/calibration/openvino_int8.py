"""OpenVINO INT8: NNCF post-training quantization of the FP32 IR with the same calibration inputs as
the ONNX flavours.

NNCF is the OpenVINO path only: its ONNX backend writes UINT8 activations wherever a range is
non-negative, which TensorRT's GPU path rejects.

Two of NNCF's defaults are changed, on measurements (output SQNR against FP32 on held-out inputs):
activation ranges are the min/max over all calibration inputs instead of the *mean* of each
input's min/max (which clips every input whose extremes are above average), and bias correction
is off. On a MobileNetV2 α 0.35 trained on digits that took OpenVINO INT8 from 16–18 dB to 25–27 dB,
level with ONNX Runtime's flavours (ONNX Runtime's Q/DQ graphs run in OpenVINO scored the same,
so the loss was NNCF's ranges, not OpenVINO's kernels); on MobileNetV2 1.0/224 all settings were
within 0.4 dB, and these were the fastest to calibrate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import InvalidOptionError
from edgecv.int8_kernels import target_cpu
from edgecv.preprocess import wrapped_batches

from .runners import compiled_runner


def openvino_names_for(onnx_nodes: Sequence[str], ov_model) -> tuple[list[str], list[str]]:
    """OpenVINO operation names that came from the given ONNX nodes, and the nodes that matched
    none. The ONNX frontend keeps a node's name and splits a Conv with bias into
    ``<name>/WithoutBiases`` (the convolution) and ``<name>`` (the bias Add)."""
    op_names = [op.get_friendly_name() for op in ov_model.get_ordered_ops()]
    matched: list[str] = []
    missing: list[str] = []
    for node in onnx_nodes:
        hits = [n for n in op_names if n == node or n.startswith(node + "/")]
        (matched.extend(hits) if hits else missing.append(node))
    return matched, missing


def quantize_openvino(
    fp32_xml: str | Path,
    out_xml: str | Path,
    samples: Sequence[np.ndarray],
    *,
    exclude: Sequence[str] = (),
    activation_ranges: str = "minmax",
    bias_correction: bool = False,
    overflow_fix: str | None = None,
    target: str = "auto",
    accuracy_control: "AccuracyControl | None" = None,
) -> dict[str, Any]:
    """Quantize the IR at ``fp32_xml`` with NNCF on ``samples`` ((C, H, W) tensors) and save the
    INT8 IR to ``out_xml`` (its ``.bin`` beside it). ``exclude`` names ONNX nodes to keep in float.
    ``activation_ranges``: ``minmax`` or NNCF's ``mean_minmax`` / ``histogram``. ``overflow_fix``:
    NNCF's ``enable`` / ``first_layer_only`` / ``disable``; by default what the CPU ``target`` (an
    ``--target-cpu`` value) needs (:data:`edgecv.int8_kernels.TARGETS`). ``accuracy_control``: NNCF's
    ``quantize_with_accuracy_control`` instead of ``quantize``, with the same settings."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    estimators = {
        "minmax": RangeEstimatorParametersSet.MINMAX,
        "mean_minmax": RangeEstimatorParametersSet.MEAN_MINMAX,
        "histogram": RangeEstimatorParametersSet.HISTOGRAM,
    }
    if activation_ranges not in estimators:
        raise InvalidOptionError(f"activation_ranges must be one of {', '.join(estimators)}, got {activation_ranges!r}")

    overflow_fix = overflow_fix or target_cpu(target).overflow_fix
    if overflow_fix not in ("enable", "first_layer_only", "disable"):
        raise InvalidOptionError(f"overflow_fix must be enable, first_layer_only or disable, got {overflow_fix!r}")
    model = ov.Core().read_model(str(fp32_xml))
    batch_dim = model.inputs[0].get_partial_shape()[0]
    batch = batch_dim.get_length() if batch_dim.is_static else 1
    groups = wrapped_batches(len(samples), batch) or [[]]
    n_batches = len(groups)

    def batches():
        for idx in groups:
            yield np.stack([samples[i] for i in idx])

    kwargs: dict[str, Any] = {
        "subset_size": n_batches,
        "advanced_parameters": nncf.AdvancedQuantizationParameters(
            activations_range_estimator_params=estimators[activation_ranges],
            disable_bias_correction=not bias_correction,
            overflow_fix=OverflowFix(overflow_fix),
        ),
    }
    ignored, missing = openvino_names_for(exclude, model) if exclude else ([], [])
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=ignored, validate=False)
    # nncf.Dataset iterates its source once per statistics pass: a re-iterable, lazy source keeps
    # memory at one batch (a generator would be exhausted after the first pass).
    dataset = nncf.Dataset(_Reiterable(batches, n_batches))
    if accuracy_control is None:
        quantized = nncf.quantize(model, dataset, **kwargs)
    else:
        quantized = accuracy_control.quantize(model, dataset, kwargs)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return {
        "nncf": nncf.__version__,
        "openvino": ov.get_version(),
        "subset_size": n_batches * batch,
        "activation_ranges": activation_ranges,
        "bias_correction": bias_correction,
        "overflow_fix": overflow_fix,
        "excluded": list(exclude),
        "excluded_not_found": missing,
    }


@dataclass(frozen=True)
class AccuracyControl:
    """NNCF's accuracy-controlled quantization with edgecv's validation: ``score(run, indices)``
    is the metric in points over those pictures (``edgecv.evaluate.validation``), ``max_drop`` the
    absolute drop allowed in the same points."""

    score: Callable[[Callable[[np.ndarray], dict[str, np.ndarray]], Sequence[int]], float]
    size: int  # pictures the validation holds
    max_drop: float

    def validate(self, compiled, indices: Iterable[int]) -> float:
        return self.score(compiled_runner(compiled), list(indices))

    def quantize(self, model, calibration, kwargs: dict[str, Any]):
        import nncf

        # The same settings as nncf.quantize, under this function's names for them.
        settings = dict(kwargs)
        settings["advanced_quantization_parameters"] = settings.pop("advanced_parameters", None)
        return nncf.quantize_with_accuracy_control(
            model,
            calibration,
            nncf.Dataset(list(range(self.size))),
            self.validate,
            max_drop=self.max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            **settings,
        )


LAYER_TYPES = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")


def quantized_layer_names(xml: str | Path) -> set[str]:
    """ONNX names of the layers of an INT8 IR whose data input comes through a FakeQuantize (a
    Conv's OpenVINO name is ``<onnx name>/WithoutBiases``)."""
    import openvino as ov

    names = set()
    for op in ov.Core().read_model(str(xml)).get_ordered_ops():
        if op.get_type_name() in LAYER_TYPES and op.input_value(0).get_node().get_type_name() == "FakeQuantize":
            names.add(op.get_friendly_name().removesuffix("/WithoutBiases"))
    return names


class _Reiterable:
    def __init__(self, make, length: int):
        self._make = make
        self._length = length

    def __iter__(self):
        return self._make()

    def __len__(self) -> int:
        return self._length
