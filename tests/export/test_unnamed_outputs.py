"""Your own module's outputs that its input spec does not name are named ``output0``, ``output1``…
(as torch.onnx.export names them), exported and each verified; declared names are never replaced."""

from __future__ import annotations

import onnx
import torch
from torch import nn

from edgecv.export.onnx_export import name_outputs
from edgecv.export.pipeline import export
from edgecv.models.spec import InputSpec


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.norm(self.conv(x))
        return y.mean((2, 3)), y


def test_undeclared_outputs_are_named_exported_and_each_verified(tmp_path):
    result = export(
        TwoOutputs().eval(), out=tmp_path / "run", input_spec=InputSpec(height=32, width=32), backends=("onnxruntime",)
    )
    verified = result.manifest["stages"]["simplify"]["info"]["verification"]["outputs"]
    assert [o["name"] for o in verified] == ["output0", "output1"]
    graph = onnx.load(str(tmp_path / "run" / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["output0", "output1"]
    declared = result.manifest["input_spec"]["outputs"]
    assert [(o["name"], o["meaning"], o["shape"]) for o in declared] == [
        ("output0", "tensor", ["batch", 4]),
        ("output1", "tensor", ["batch", 4, 32, 32]),
    ]


def test_declared_or_single_outputs_keep_their_names():
    declared = InputSpec(height=32, width=32, output_names=("mean", "map"))
    assert name_outputs(TwoOutputs(), declared) is declared
    single = InputSpec(height=32, width=32)
    assert name_outputs(nn.Conv2d(3, 4, 3), single) is single


def test_naming_runs_the_module_without_touching_its_state():
    model = TwoOutputs().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = name_outputs(model, InputSpec(height=16, width=16, batch=2))
    assert spec.output_names == ("output0", "output1")
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
