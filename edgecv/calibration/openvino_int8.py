"""OpenVINO INT8: NNCF post-training quantization of the FP32 IR with the same calibration inputs as
the ONNX flavours.

NNCF is the OpenVINO path only: its ONNX backend writes UINT8 activations wherever a range is
non-negative, which TensorRT's GPU path rejects.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


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
    fast_bias_correction: bool = True,
) -> dict[str, Any]:
    """Quantize the IR at ``fp32_xml`` with NNCF on ``samples`` ((C, H, W) tensors) and save the
    INT8 IR to ``out_xml`` (its ``.bin`` beside it). ``exclude`` names ONNX nodes to keep in float."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    batch_dim = model.inputs[0].get_partial_shape()[0]
    batch = batch_dim.get_length() if batch_dim.is_static else 1
    n_batches = max(1, len(samples) // batch)

    def batches():
        for b in range(n_batches):
            yield np.stack([samples[(b * batch + k) % len(samples)] for k in range(batch)])

    kwargs: dict[str, Any] = {"subset_size": n_batches, "fast_bias_correction": fast_bias_correction}
    ignored, missing = openvino_names_for(exclude, model) if exclude else ([], [])
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=ignored, validate=False)
    # nncf.Dataset iterates its source once per statistics pass: a re-iterable, lazy source keeps
    # memory at one batch (a generator would be exhausted after the first pass).
    quantized = nncf.quantize(model, nncf.Dataset(_Reiterable(batches, n_batches)), **kwargs)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return {
        "nncf": nncf.__version__,
        "openvino": ov.get_version(),
        "subset_size": n_batches * batch,
        "fast_bias_correction": fast_bias_correction,
        "excluded": list(exclude),
        "excluded_not_found": missing,
    }


class _Reiterable:
    def __init__(self, make, length: int):
        self._make = make
        self._length = length

    def __iter__(self):
        return self._make()

    def __len__(self) -> int:
        return self._length
