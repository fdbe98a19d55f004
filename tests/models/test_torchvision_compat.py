"""torchvision checkpoints load into our MobileNetV2 and ShuffleNetV2 and compute the same outputs.

The fixtures were recorded from torchvision itself (see make_torchvision_fixtures.py): its
state_dict layout, parameter count, and logits after filling every tensor deterministically.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgecv.models import create_model
from tests.models.statefill import filled_state_dict, reference_input

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "models").glob("torchvision_*.json"))
LOGITS_ATOL = 1e-4


@pytest.fixture(params=FIXTURES, ids=lambda p: p.stem)
def reference(request):
    return json.loads(request.param.read_text())


def test_fixtures_cover_both_families():
    assert {json.loads(p.read_text())["model"] for p in FIXTURES} == {"mobilenetv2", "shufflenetv2"}


def test_state_dict_layout_matches_torchvision(reference):
    model = create_model(reference["model"], width_mult=reference["width_mult"])
    layout = [[key, list(t.shape)] for key, t in model.state_dict().items()]
    assert layout == reference["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == reference["params"]


def test_torchvision_checkpoint_loads_strictly_and_gives_the_same_logits(reference, tmp_path):
    resolution = reference["resolution"]
    # A checkpoint file with torchvision's keys and deterministic values, loaded the user's way.
    empty = {
        key: torch.zeros(shape, dtype=torch.long if key.endswith("num_batches_tracked") else torch.float32)
        for key, shape in reference["state_dict"]
    }
    checkpoint = filled_state_dict(empty)
    path = tmp_path / "torchvision.pth"
    torch.save(checkpoint, path)

    model = create_model(reference["model"], width_mult=reference["width_mult"], resolution=resolution, weights=path)
    with torch.no_grad():
        logits = model(reference_input(resolution))[0].double()
    expected = torch.tensor(reference["logits_first"], dtype=torch.float64)
    torch.testing.assert_close(logits[: len(expected)], expected, atol=LOGITS_ATOL, rtol=0)
    assert logits.norm().item() == pytest.approx(reference["logits_norm"], abs=LOGITS_ATOL)
