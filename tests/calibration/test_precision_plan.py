"""Speed-aware precision of the CPU flavour with the measurement replaced by a cost table: the plan
keeps in float exactly the blocks the table makes worth it, the artifact computes those layers in
float (and the same function as FP32), and the decision is recorded with its times, CPU and
thread count. One test measures for real, on the tiny network, and checks only the record."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.calibration import quantize_run
from edgecv.calibration.precision import ALL_INT8, FP32, Block, attribute, group_blocks, propose
from edgecv.calibration.runners import ort_runner

from .conftest import min_cosine_to_fp32

DW = "/block/block.1/block.1.0/Conv"
DW_BLOCK = [DW, "/block/block.1/block.1.2/Clip"]
HEAD = "/head/head.0/Conv"
HEAD_BLOCK = [HEAD, "/head/head.2/Clip"]


def _silu_graph() -> onnx.ModelProto:
    """Conv → SiLU (Sigmoid, Mul) → depthwise Conv → ReLU → residual Add with the SiLU's output."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 4, 1, 1)).astype(np.float32), "w1")
    wd = numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "wd")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv"),
        helper.make_node("Sigmoid", ["c1"], ["s"], name="sig"),
        helper.make_node("Mul", ["c1", "s"], ["silu"], name="mul"),
        helper.make_node("Conv", ["silu", "wd"], ["d"], name="dw", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["d"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "silu"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        [w1, wd],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_layer_and_its_activation_are_one_block():
    blocks = group_blocks(_silu_graph())
    assert [(b.op_type, b.nodes) for b in blocks] == [
        ("Conv", ["conv", "sig", "mul"]),
        ("DepthwiseConv", ["dw", "relu"]),
        ("Add", ["add"]),
    ]
    assert [b.nodes for b in group_blocks(_silu_graph(), fixed=["add", "relu"])] == [["conv", "sig", "mul"], ["dw"]]


def test_profiled_kernels_are_charged_to_the_nodes_they_ran_for():
    # Names ONNX Runtime gives kernels after fusing: a QLinearConv, a blocked float convolution, a
    # fused activation, the Q/DQ of a node's output; and a layout reorder that belongs to no node.
    kernels = {
        "dw_token_12": 3.0,
        "c1_nchwc": 1.0,
        "mul/QuickGeluFusion/": 0.5,
        "silu_QuantizeLinear": 0.25,
        "r_DequantizeLinear": 0.125,
        "ReorderOutput": 2.0,
    }
    per_node, unnamed = attribute(kernels, _silu_graph())
    assert per_node == {"dw": 3.0, "conv": 1.0, "mul": 0.75, "relu": 0.125}
    assert unnamed == 2.0


def test_losing_blocks_are_proposed_most_loss_first_in_growing_sets():
    blocks = [
        Block("a", "Conv", ["a"], fp32_ms=1.0, int8_ms=0.5),  # INT8 wins
        Block("b", "DepthwiseConv", ["b"], fp32_ms=1.0, int8_ms=4.0),
        Block("c", "Add", ["c"], fp32_ms=1.0, int8_ms=1.02),  # within the profile's noise
        Block("d", "Conv", ["d"], fp32_ms=1.0, int8_ms=2.0),
        Block("e", "Conv", ["e"], fp32_ms=0.1, int8_ms=0.5),
        Block("f", "Mul", ["f"], fp32_ms=0.1, int8_ms=0.3),
    ]
    proposed = {name: [b.name for b in s] for name, s in propose(blocks).items()}
    assert proposed == {
        "float-2": ["b", "d"],
        "float-4": ["b", "d", "e", "f"],
        # Conv blocks take 3.0 ms in INT8 against 2.1 in float in total: every one of them, "a" too.
        "kinds:Conv+DepthwiseConv+Mul": ["a", "b", "d", "e", "f"],
    }
    assert propose([blocks[0], blocks[2]]) == {}


class TableCosts:
    """A cost source that answers from tables: per-node kernel times for the FP32 and the INT8
    graph (named the way ONNX Runtime's profiler names kernels) and whole-graph times by which
    nodes a candidate keeps in float."""

    threads = 3
    clock = "table"

    def __init__(self, fp32: dict[str, float], int8: dict[str, float], whole: dict[frozenset, float]):
        self.tables = {FP32: fp32, "int8": int8}
        self.whole = whole
        self.timed: list[str] = []

    def kernel_times(self, model, label):
        return {f"{node}_token_7": ms for node, ms in self.tables[label].items()}

    def graph_times(self, candidates):
        # What the first call timed: every candidate (a second one confirms the fastest).
        self.timed = self.timed or list(candidates)
        out = {}
        for name, c in candidates.items():
            ms = FP32_WHOLE_MS if name == FP32 else self.whole[frozenset(c.float_nodes)]
            out[name] = {"typical_ms": ms, "median_ms": ms, "min_ms": ms, "runs": 1}
        return out


FP32_WHOLE_MS = 7.5
# The depthwise block and the head lose in their kernels; whole-graph times decide how many stay float.
FP32_MS = {DW: 1.0, HEAD: 1.9, "/stem/stem.0/Conv": 2.0}
INT8_MS = {DW: 5.0, HEAD: 2.0, "/stem/stem.0/Conv": 1.0}
WHOLE = {
    "depthwise only": ({frozenset(): 10.0, frozenset(DW_BLOCK): 8.0, frozenset(DW_BLOCK + HEAD_BLOCK): 9.0}, DW_BLOCK),
    "both": (
        {frozenset(): 10.0, frozenset(DW_BLOCK): 9.5, frozenset(DW_BLOCK + HEAD_BLOCK): 7.0},
        DW_BLOCK + HEAD_BLOCK,
    ),
    "neither": ({frozenset(): 6.0, frozenset(DW_BLOCK): 8.0, frozenset(DW_BLOCK + HEAD_BLOCK): 9.0}, []),
}


@pytest.fixture(scope="module")
def ranged_run(tiny_onnx, tiny_calib, tmp_path_factory):
    """A run folder whose activation ranges are cached, so each forced plan only quantizes."""
    run = tmp_path_factory.mktemp("plan")
    shutil.copy(tiny_onnx, run / "model.onnx")
    quantize_run(run / "model.onnx", run, tiny_calib, flavours=("cpu",))
    return run


def _float_inputs(model: onnx.ModelProto) -> dict[str, bool]:
    """Per Conv: does it read float tensors (no DequantizeLinear in front of its input or weight)?"""
    producer = {o: n for n in model.graph.node for o in n.output}
    return {
        n.name: all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear" for i in n.input[:2])
        for n in model.graph.node
        if n.op_type == "Conv"
    }


@pytest.mark.parametrize("case", list(WHOLE))
def test_a_forced_plan_keeps_its_blocks_in_float(case, ranged_run, tiny_calib, tmp_path):
    whole, expected = WHOLE[case]
    run = tmp_path / "run"
    shutil.copytree(ranged_run, run)
    costs = TableCosts(FP32_MS, INT8_MS, whole)
    result = quantize_run(run / "model.onnx", run, tiny_calib, flavours=("cpu",), speed_plan=costs)

    assert costs.timed == [FP32, ALL_INT8, "float-1", "float-2"]  # candidates are whole graphs
    cpu = result.flavours["cpu"]
    plan = cpu["precision_plan"]
    assert (
        plan["measured_on"]["threads"] == 3 and plan["measured_on"]["cpu"] and plan["measured_on"]["clock"] == "table"
    )
    assert sorted(plan["float_nodes"]) == sorted(expected)
    assert plan["candidates"][plan["chosen"]]["typical_ms"] == min(whole.values())
    assert [b["block"] for b in plan["losing_blocks"]] == [DW, HEAD]
    slower = [w for w in result.warnings if "slower than FP32" in w]
    assert len(slower) == (min(whole.values()) > FP32_WHOLE_MS)  # an INT8 flavour slower than FP32 is said
    kept = {k["node"]: k["reason"] for k in cpu["kept_float"]}
    assert {n for n, why in kept.items() if "in INT8 at 3 threads" in why} == set(expected)
    if expected:
        assert kept[DW].startswith("slower in INT8 at 3 threads: 5.000 ms vs 1.000 ms in float")
    report = json.loads((run / "calibration" / "report.json").read_text())
    assert report["flavours"]["cpu"]["precision_plan"]["float_nodes"] == plan["float_nodes"]

    # The artifact: exactly the planned convolutions read float tensors, and it computes what FP32 does.
    artifact = result.artifacts["onnx-int8-cpu"]
    reads_float = _float_inputs(onnx.load(str(artifact)))
    assert {n for n, f in reads_float.items() if f} == {n for n in expected if n in reads_float}
    assert min_cosine_to_fp32(run / "model.onnx", ort_runner(artifact), tiny_calib) > 0.99


def test_a_measured_plan_records_what_it_measured(ranged_run, tiny_calib, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ranged_run, run)
    result = quantize_run(run / "model.onnx", run, tiny_calib, flavours=("cpu",), speed_plan=True, threads=1)
    plan = result.flavours["cpu"]["precision_plan"]
    assert plan["measured_on"]["threads"] == 1 and plan["measured_on"]["clock"] == "thread CPU time"
    assert plan["blocks_profiled"] == 8
    assert {FP32, ALL_INT8} <= set(plan["candidates"]) and plan["chosen"] in plan["candidates"]
    for figures in plan["candidates"].values():
        assert figures["runs"] > 0 and 0 < figures["min_ms"] <= figures["typical_ms"]
    assert "precision_plan_cpu" in result.timings_s
    assert ort_runner(result.artifacts["onnx-int8-cpu"])(np.zeros((1, 3, 32, 32), np.float32))["logits"].shape == (
        1,
        10,
    )


def test_timing_drops_candidates_that_are_clearly_slower():
    from edgecv.calibration.precision.measure import _still_close, typical_ms

    # A run slowed by other work does not move a round's fastest; one lucky round decides nothing.
    assert typical_ms([[1.0, 3.0, 9.0], [0.5, 30.0, 30.0], [1.2, 1.2, 1.2], [1.1, 1.1, 30.0], [2.0, 5.0, 5.0]]) == 1.1
    rounds = {"a": [[10.0] * 4] * 3, "b": [[10.3] * 4] * 3, "c": [[12.0] * 4] * 3}
    assert _still_close(list(rounds), rounds, margin=0.05) == ["a", "b"]


def test_no_candidate_is_built_when_float_could_gain_too_little(ranged_run, tiny_calib, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ranged_run, run)
    # The depthwise block loses 0.1 ms of an INT8 graph profiled at 10 ms: under 3 %, not worth timing.
    stem = "/stem/stem.0/Conv"
    costs = TableCosts({DW: 1.0, stem: 9.0}, {DW: 1.1, stem: 8.9}, {frozenset(): 6.0})
    result = quantize_run(run / "model.onnx", run, tiny_calib, flavours=("cpu",), speed_plan=costs)
    plan = result.flavours["cpu"]["precision_plan"]
    assert costs.timed == [FP32, ALL_INT8] and plan["chosen"] == ALL_INT8 and plan["float_nodes"] == []
    assert [b["block"] for b in plan["losing_blocks"]] == [DW]


def test_every_float_node_has_a_true_reason(tmp_path):
    from edgecv.calibration.precision import Candidate, PrecisionPlan

    blocks = [Block("a", "Conv", ["a", "a_act"], 1.0, 0.5), Block("b", "Conv", ["b"], 1.0, 3.0)]
    times = {name: {"typical_ms": ms} for name, ms in ((FP32, 4.0), (ALL_INT8, 5.0), ("kinds:Conv", 3.0))}
    chosen = Candidate("kinds:Conv", tmp_path / "x.onnx", ["a", "a_act", "b", "reshape"], ["a", "b"])
    plan = PrecisionPlan(
        2, "cpu", blocks, {ALL_INT8: Candidate(ALL_INT8, tmp_path), "kinds:Conv": chosen}, times, "kinds:Conv"
    )
    reasons = plan.reasons
    assert reasons["b"].startswith("slower in INT8 at 2 threads: 3.000 ms vs 1.000 ms in float (block b)")
    assert reasons["a"] == reasons["a_act"] and reasons["a"].startswith("Conv blocks together ran slower")
    assert reasons["reshape"].startswith("data movement between float blocks")
    assert all(r.endswith("whole graph 3.00 ms against 5.00 ms all-INT8") for r in reasons.values())
    assert plan.warning is None and plan.to_dict()["speedup_vs_fp32"] == pytest.approx(4 / 3, abs=1e-3)


def test_a_candidate_must_win_by_more_than_timing_resolves(ranged_run, tiny_calib, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ranged_run, run)
    whole = {frozenset(): 10.0, frozenset(DW_BLOCK): 9.8, frozenset(DW_BLOCK + HEAD_BLOCK): 9.9}
    result = quantize_run(
        run / "model.onnx", run, tiny_calib, flavours=("cpu",), speed_plan=TableCosts(FP32_MS, INT8_MS, whole)
    )
    assert result.flavours["cpu"]["precision_plan"]["chosen"] == ALL_INT8  # 2 % faster: within the noise
