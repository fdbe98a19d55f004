"""Verification inputs (random and real photographs, preprocessed from the InputSpec) and the
PyTorch reference outputs every artifact is compared against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from edgecv.errors import InvalidOptionError
from edgecv.models.spec import InputSpec
from edgecv.preprocess import preprocess, sample_photos, wrapped_batches

from .verify import DECODED_BOXES, DECODED_SCORES


@dataclass
class VerificationInputs:
    batches: list[np.ndarray]
    description: str


def verification_inputs(
    spec: InputSpec, *, batch: int = 1, dynamic_batch: bool = False, n_random: int = 2, seed: int = 0
) -> VerificationInputs:
    rng = np.random.default_rng(seed)
    photos = [preprocess(p, spec) for p in sample_photos()]
    noise = [rng.standard_normal(spec.shape[1:]).astype(np.float32) for _ in range(n_random)]
    samples = noise + photos
    desc = f"{len(noise)} random + {len(photos)} photographs"
    if dynamic_batch:
        # Every sample alone, and one batch of 4, so both batch sizes are exercised.
        four = np.stack([samples[i] for i in wrapped_batches(len(samples), 4)[0]])
        batches = [s[None] for s in samples] + [four]
        desc += ", batch 1 and 4"
    else:
        batches = [np.stack([samples[i] for i in idx]) for idx in wrapped_batches(len(samples), batch)]
        desc += f", batch {batch}"
    return VerificationInputs([np.ascontiguousarray(b, dtype=np.float32) for b in batches], desc)


def torch_outputs(model: nn.Module, spec: InputSpec, batches: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """PyTorch's outputs for every batch, named by the spec's declared outputs.

    A model returning another number of tensors than the spec declares is refused: zipping them
    would drop the extra outputs from verification without a word."""
    results = []
    with torch.inference_mode():
        for b in batches:
            out = model(torch.from_numpy(b))
            outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            if len(outs) != len(spec.output_names):
                raise InvalidOptionError(
                    f"the model returns {len(outs)} output(s) but its input spec declares "
                    f"{len(spec.output_names)} ({', '.join(spec.output_names)}); declare every output "
                    "(InputSpec.outputs / output_names) so each one is exported and verified"
                )
            named = {name: o.detach().cpu().numpy() for name, o in zip(spec.output_names, outs)}
            decoded = getattr(getattr(model, "postprocess", None), "last_inputs", None)
            if decoded is not None:
                # What the detector handed to its post-processing: verified element-wise.
                named[DECODED_BOXES], named[DECODED_SCORES] = (t.cpu().numpy() for t in decoded)
            results.append(named)
    return results
