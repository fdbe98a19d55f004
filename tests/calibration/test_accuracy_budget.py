"""The INT8 accuracy budget on a network whose INT8-sensitive layer is known by construction.

``SensitiveNet``'s middle convolution has, in every output channel, one weight of 20 on an input
channel that is always zero (the stem makes it zero through a ReLU) and small weights elsewhere. In
float that weight multiplies zero and does nothing; in INT8 its channel's scale is 20/127, so every
other weight rounds to 0 and the layer's output is its bias alone: the logits are constant and top-1
collapses to one class. Keeping that one layer in float restores FP32's predictions, whichever CPU
runs it. The data's labels are FP32's own predictions on inputs whose top logit wins by a wide
margin, so FP32 scores 100 by construction and no accuracy figure depends on training or on the
machine's float kernels.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgecv.calibration import quantize_run
from edgecv.calibration.accuracy_budget import AccuracyBudget, float_closure, search_counts
from edgecv.errors import InvalidOptionError
from edgecv.evaluate.validation import open_validation
from edgecv.models.spec import InputSpec

from .conftest import export_simplified, quiet_calibration

SIDE = 16
CLASSES = 4
BUDGET = 2.0  # points; the collapsed INT8 artifact loses ~75, the right layer in float ~0


class SensitiveNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.middle = nn.Conv2d(8, 16, 1)
        self.classifier = nn.Linear(16, CLASSES)
        with torch.no_grad():
            self.stem.weight[7] = 0.0
            self.stem.bias[7] = -1.0  # channel 7 is ReLU(-1) = 0 for every input
            self.middle.weight.normal_(0.0, 0.02)  # all below half of 20/127: INT8 rounds them to 0
            self.middle.weight[:, 7] = 20.0
            # No biases after the stem: a zeroed layer then leaves all-zero logits (class 0 wins).
            self.middle.bias.zero_()
            self.classifier.bias.zero_()

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.middle(x)).mean((2, 3))
        return self.classifier(x)


def _spec() -> InputSpec:
    return InputSpec(height=SIDE, width=SIDE, output_names=("logits",))


@pytest.fixture(scope="module")
def sensitive(tmp_path_factory):
    """The run folder (FP32 ONNX + IR), calibration data, evaluation data and the sensitive node."""
    import openvino as ov

    run = tmp_path_factory.mktemp("sensitive")
    model = SensitiveNet().eval()
    onnx_path = export_simplified(model, run / "model.onnx", SIDE)
    xml = run / "openvino" / "model.xml"
    xml.parent.mkdir()
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)

    rng = np.random.default_rng(0)
    # A colour per picture and some noise: pictures differ enough to spread over the classes.
    x = rng.normal(0.0, 1.5, (4000, 3, 1, 1)) + 0.3 * rng.normal(0.0, 1.0, (4000, 3, SIDE, SIDE))
    x = x.astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    top2 = np.sort(logits, 1)[:, -2:]
    labels = logits.argmax(1)
    wide = (top2[:, 1] - top2[:, 0]) > 0.2 * logits.std()
    # At most 60 inputs of each class, so no constant prediction scores more than about half.
    keep = np.concatenate([np.flatnonzero(wide & (labels == c))[:60] for c in range(CLASSES)])
    assert len(np.unique(labels[keep])) >= 3, "the constructed net should predict several classes"
    np.savez(run / "eval.npz", inputs=x[keep], labels=labels[keep])
    np.save(run / "calib.npy", x[3000:3300])
    calib = quiet_calibration(str(run / "calib.npy"), _spec(), size=300)
    graph = onnx.load(str(onnx_path)).graph
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    node = next(n.name for n in graph.node if n.op_type == "Conv" and weights[n.input[1]].max() == 20.0)
    validation = open_validation(run / "eval.npz", _spec(), {"num_classes": CLASSES})
    return run, calib, validation, node


@pytest.fixture(scope="module")
def budget_run(sensitive):
    run, calib, validation, _ = sensitive
    result = quantize_run(
        run / "model.onnx",
        run,
        calib,
        openvino_xml=run / "openvino" / "model.xml",
        accuracy_budget=AccuracyBudget(BUDGET, validation),
        sensitivity_inputs=8,
    )
    return run, result


def test_the_onnx_flavours_put_back_exactly_the_sensitive_layer(sensitive, budget_run):
    _, _, _, node = sensitive
    run, result = budget_run
    assert result.sensitivity.layers[0].node == node
    for artifact in ("onnx-int8", "onnx-int8-cpu"):
        outcome = result.accuracy_budget["artifacts"][artifact]
        assert outcome["fp32"] == 100.0
        assert outcome["drop_before"] > 40, outcome  # the collapse the construction promises
        assert outcome["reverted"] == [node] and outcome["reached"] is True
        assert outcome["drop_after"] <= BUDGET
        assert outcome["latency_ms"]["before"] > 0 and outcome["latency_ms"]["after"] > 0
        # The artifact written is the one measured: the node reads float inputs, and reports why.
        graph = onnx.load(str(result.artifacts[artifact])).graph
        producers = {o: n.op_type for n in graph.node for o in n.output}
        kept = next(n for n in graph.node if n.name == node)
        assert producers.get(kept.input[0]) != "DequantizeLinear"
    ops = {n.name: n.op_type for n in onnx.load(str(run / "model.onnx")).graph.node}
    flavour = result.flavours["tensorrt"]
    # The layer and what only it feeds (its ReLU, the pooling) up to the classifier.
    assert flavour["float_added"][0] == node and flavour["tensorrt_rules"] == "passed"
    assert {ops[n] for n in flavour["float_added"][1:]} <= {"Relu", "ReduceMean", "GlobalAveragePool"}
    assert any(k["node"] == node and "--max-accuracy-drop" in k["reason"] for k in flavour["kept_float"])
    report = json.loads((run / "calibration" / "report.json").read_text())
    assert report["accuracy_budget"]["data"]["metric"] == "top1"
    assert set(report["accuracy_budget"]["artifacts"]) == {"onnx-int8", "onnx-int8-cpu", "openvino-int8"}


def test_nncf_accuracy_control_reverts_the_sensitive_layer(sensitive, budget_run):
    _, _, _, node = sensitive
    _, result = budget_run
    outcome = result.accuracy_budget["artifacts"]["openvino-int8"]
    assert "quantize_with_accuracy_control" in outcome["method"]
    assert outcome["drop_before"] > 40 and outcome["drop_after"] <= BUDGET, outcome
    assert node in outcome["reverted"]
    assert result.flavours["openvino"]["float_added"] == outcome["reverted"]


def test_a_budget_already_met_changes_nothing(sensitive, tmp_path):
    run, calib, validation, _ = sensitive
    for name in ("model.onnx",):
        (tmp_path / name).write_bytes((run / name).read_bytes())
    # 100 points: anything holds, so the first candidate (the flavour's own float set) is kept.
    result = quantize_run(
        tmp_path / "model.onnx", tmp_path, calib, flavours=("cpu",), accuracy_budget=AccuracyBudget(100.0, validation)
    )
    outcome = result.accuracy_budget["artifacts"]["onnx-int8-cpu"]
    assert outcome["reverted"] == [] and outcome["trials"] == [{"reverted": 0, "drop": outcome["drop_before"]}]
    assert outcome["latency_ms"] is None and result.sensitivity is None  # no ranking needed


@pytest.mark.parametrize("first_holding", [1, 5, 13, 50])
def test_the_search_finds_the_smallest_count_in_few_quantizations(first_holding):
    calls = []

    def drop_of(k):
        calls.append(k)
        return 10.0 if k < first_holding else 0.5

    assert search_counts(drop_of, 50, 1.0) == first_holding
    assert len(calls) == len(set(calls)) and len(calls) <= 2 * 6 + 1  # doubling then bisecting over 50


def test_an_unreachable_budget_keeps_the_best_candidate_found():
    drops = {0: 9.0, 1: 4.0, 2: 3.0, 3: 5.0}
    assert search_counts(drops.__getitem__, 3, 1.0) == 2


def test_a_negative_budget_is_refused(sensitive):
    with pytest.raises(InvalidOptionError, match="max-accuracy-drop"):
        AccuracyBudget(-1.0, sensitive[2])


def test_the_float_closure_follows_a_layer_to_the_next_one(tiny_onnx):
    """TinyNet: stem → ReLU6 → [block] + residual Add → head → pool → classifier."""
    model = onnx.load(str(tiny_onnx))
    graph = model.graph
    ops = {n.name: n.op_type for n in graph.node}
    layers = [n.name for n in graph.node if n.op_type in ("Conv", "Gemm")]
    stem = float_closure(model, layers[:1])
    assert stem[0] == layers[0] and {ops[n] for n in stem[1:]} == {"Clip"}  # not the Add: the block is INT8
    everything = float_closure(model, layers)
    assert set(everything) == set(ops) - {n.name for n in graph.node if not n.input or n.op_type == "Constant"}


class _NeverCloseEnough:
    """A validation on which FP32 (scored first) gets 100 points and every INT8 candidate 50."""

    metric = "top1"

    def __init__(self):
        self.calls = 0

    def __len__(self):
        return 1

    def describe(self):
        return {"kind": "fake", "metric": self.metric, "images": 1}

    def score(self, run, indices=None):
        self.calls += 1
        return 100.0 if self.calls == 1 else 50.0


def test_an_unreachable_budget_keeps_the_best_found_and_says_so(sensitive, tmp_path):
    run, calib, _, _ = sensitive
    (tmp_path / "model.onnx").write_bytes((run / "model.onnx").read_bytes())
    budget = AccuracyBudget(1.0, _NeverCloseEnough())
    result = quantize_run(tmp_path / "model.onnx", tmp_path, calib, flavours=("cpu",), accuracy_budget=budget)
    outcome = result.accuracy_budget["artifacts"]["onnx-int8-cpu"]
    assert outcome["reached"] is False and outcome["drop_after"] == 50.0
    # Every count tried up to all three layers, and the smallest of the equal drops kept.
    assert [t["reverted"] for t in outcome["trials"]] == [0, 1, 2, 3] and outcome["reverted"] == []
    assert any("over --max-accuracy-drop 1" in w and "kept the best found" in w for w in result.warnings)


class _FirstCandidateShort(_NeverCloseEnough):
    """FP32 100 points, the flavour as it comes 50, every candidate after it 100."""

    def score(self, run, indices=None):
        self.calls += 1
        return 50.0 if self.calls == 2 else 100.0


def test_the_budget_starts_from_the_speed_plans_float_set(tiny_onnx, tiny_calib, tmp_path):
    from tests.calibration.test_precision_plan import DW, DW_BLOCK, FP32_MS, INT8_MS, WHOLE, TableCosts

    (tmp_path / "model.onnx").write_bytes(tiny_onnx.read_bytes())
    costs = TableCosts(FP32_MS, INT8_MS, WHOLE["depthwise only"][0])  # the plan keeps the depthwise block float
    result = quantize_run(
        tmp_path / "model.onnx",
        tmp_path,
        tiny_calib,
        flavours=("cpu",),
        speed_plan=costs,
        accuracy_budget=AccuracyBudget(1.0, _FirstCandidateShort()),
        sensitivity_inputs=8,
    )
    cpu = result.flavours["cpu"]
    outcome = result.accuracy_budget["artifacts"]["onnx-int8-cpu"]
    assert sorted(cpu["precision_plan"]["float_nodes"]) == sorted(DW_BLOCK)
    # One more layer went back to float, never one the plan already kept there.
    assert len(outcome["reverted"]) == 1 and outcome["reverted"][0] != DW and outcome["reached"]
    assert not set(cpu["float_added"]) & set(DW_BLOCK) and cpu["float_added"][0] == outcome["reverted"][0]
    graph = onnx.load(str(result.artifacts["onnx-int8-cpu"])).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    for node in (DW, outcome["reverted"][0]):
        data = next(n for n in graph.node if n.name == node).input[0]
        assert producers.get(data) != "DequantizeLinear", node
    reasons = {k["node"]: k["reason"] for k in cpu["kept_float"]}
    assert reasons[DW].startswith("slower in INT8") and "--max-accuracy-drop" in reasons[outcome["reverted"][0]]
