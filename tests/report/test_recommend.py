"""Which artifact a benchmark recommends, from synthetic results rows (no timing): the fastest within
the accuracy budget, by speed only (and said so) without accuracy figures, per thread count, and
where each INT8 artifact pays."""

from __future__ import annotations

import json

import pytest

from edgecv.errors import InvalidOptionError
from edgecv.report.recommend import add_recommendation, recommend, recorded_budget
from edgecv.report.recommendation_text import recommendation_lines


def row(artifact, backend, precision, ms, threads=2, delta=None, intended_for=None, **extra):
    r = {
        "artifact": artifact,
        "backend": backend,
        "artifact_precision": precision,
        "intended_for": intended_for or backend,
        "scenario": "single-stream",
        "batch": 1,
        "device": "cpu",
        "threads": threads,
        "latency": {"p90_ms": ms, "median_ms": ms * 0.9, "count": 10},
        "throughput_ips": 1000.0 / ms,
        **extra,
    }
    if delta is not None or (precision == "fp32" and "no_eval" not in extra):
        r["accuracy"] = {"metric": "top1", "value": 0.70 + (delta or 0.0), "delta": delta}
    r.pop("no_eval", None)
    return r


def machine(threads=2, ort_int8_ms=1.6, eval_figures=True):
    """PyTorch, ORT FP32, ORT INT8 (drop 0.4 pt), OpenVINO INT8 (drop 2.1 pt) and the TensorRT-flavour
    INT8 timed in ORT, at one thread count."""
    extra = {} if eval_figures else {"no_eval": True}
    return [
        row("pytorch", "torch", "fp32", 0.5, threads, **extra),  # eager is never a deployment pick
        row("onnx-fp32", "onnxruntime", "fp32", 3.0, threads, **extra),
        row("onnx-int8-cpu", "onnxruntime", "int8", ort_int8_ms, threads, -0.004 if eval_figures else None),
        row("openvino-int8", "openvino", "int8", 1.2, threads, -0.021 if eval_figures else None),
        row("onnx-int8", "onnxruntime", "int8", 0.1, threads, intended_for="tensorrt"),  # a reference figure
    ]


def only(rec):
    [group] = rec["groups"]
    return group


def test_the_pick_is_the_fastest_within_the_budget_and_each_alternative_says_why_it_lost():
    group = only(recommend(machine(), 1.0, budget_source="flag"))
    assert group["basis"] == "accuracy budget"
    assert group["pick"]["artifact"] == "onnx-int8-cpu" and group["pick"]["drop_pts"] == pytest.approx(0.4)
    lost = {a["artifact"]: a["lost"] for a in group["alternatives"]}
    assert lost == {"openvino-int8": "1.10 pt over the 1 pt budget", "onnx-fp32": "slower by 1.88×"}


def test_a_wider_budget_takes_the_faster_int8_and_a_zero_budget_keeps_fp32():
    assert only(recommend(machine(), 3.0))["pick"]["artifact"] == "openvino-int8"
    assert only(recommend(machine(), 0.0))["pick"]["artifact"] == "onnx-fp32"
    # A drop exactly at the budget is within it.
    assert only(recommend(machine(), 2.1))["pick"]["artifact"] == "openvino-int8"


def test_without_eval_figures_the_pick_is_by_speed_only_and_names_the_fp32_fallback():
    rec = recommend(machine(eval_figures=False), 1.0, budget_source="manifest")
    group = only(rec)
    assert group["basis"] == "speed only"
    assert group["pick"]["artifact"] == "openvino-int8" and group["pick"]["status"] == "unmeasured"
    assert group["fp32_fallback"]["artifact"] == "onnx-fp32"
    [head, *_] = recommendation_lines(rec)
    assert "by speed only" in head and "the 1 pt budget cannot be checked" in head and "within" not in head
    assert "onnx-fp32" in head and rec["accuracy_measured_for"] == []


def test_an_unmeasured_int8_is_never_within_the_budget_when_others_are_measured():
    rows = machine()
    del rows[3]["accuracy"]  # openvino-int8, the fastest, was not evaluated
    group = only(recommend(rows, 5.0))
    assert group["pick"]["artifact"] == "onnx-int8-cpu"
    lost = {a["artifact"]: a["lost"] for a in group["alternatives"]}
    assert lost["openvino-int8"] == "accuracy not measured, so not known to be within the budget"


def test_without_a_budget_the_pick_is_by_speed_and_the_figures_that_exist_are_named():
    rec = recommend(machine())
    assert only(rec)["pick"]["artifact"] == "openvino-int8" and only(rec)["basis"] == "speed only"
    assert rec["budget"] == {"max_drop_pts": None, "source": None, "metric": "top1"}
    lines = recommendation_lines(rec)
    assert "no accuracy budget" in lines[0] and "drop 2.10 pt" in lines[0]
    assert any(
        line.startswith("accuracy figures from edgecv eval: onnx-fp32, onnx-int8-cpu, openvino-int8") for line in lines
    )


def test_ties_go_to_the_smaller_drop_then_to_fp32():
    rows = [
        row("onnx-fp32", "onnxruntime", "fp32", 2.0),
        row("openvino-int8", "openvino", "int8", 2.0, delta=-0.003),
        row("onnx-int8-cpu", "onnxruntime", "int8", 2.0, delta=-0.001),
    ]
    group = only(recommend(rows, 1.0))
    assert group["pick"]["artifact"] == "onnx-fp32"
    assert [a["artifact"] for a in group["alternatives"]] == ["onnx-int8-cpu", "openvino-int8"]
    assert group["alternatives"][0]["lost"].startswith("as fast (p90 2.00 ms)")


def test_a_thread_sweep_gets_one_pick_per_thread_count_and_the_int8_note_says_where_it_pays():
    rows = machine(1, ort_int8_ms=1.6) + machine(2, ort_int8_ms=2.5) + machine(4, ort_int8_ms=3.3)
    rec = recommend(rows, 1.0)
    picks = {g["threads"]: g["pick"]["artifact"] for g in rec["groups"]}
    assert picks == {1: "onnx-int8-cpu", 2: "onnx-int8-cpu", 4: "onnx-fp32"}
    verdicts = {v["artifact"]: v for v in rec["int8"]}
    assert set(verdicts) == {"onnx-int8-cpu", "openvino-int8"}  # not the TensorRT flavour timed in ORT
    assert verdicts["onnx-int8-cpu"]["pays_at"] == [1, 2] and verdicts["onnx-int8-cpu"]["loses_at"] == [4]
    assert verdicts["openvino-int8"]["pays_at"] == [1, 2, 4]
    assert verdicts["onnx-int8-cpu"]["note"] == (
        "onnx-int8-cpu (batch 1): INT8 pays at 1, 2 threads and loses at 4 threads (against the fastest FP32, "
        "onnx-fp32: 1.88× at 1 thread, 1.20× at 2 threads, 0.91× at 4 threads)"
    )


def test_int8_compares_with_its_own_engine_too_and_a_tie_does_not_pay():
    rows = [
        row("onnx-fp32", "onnxruntime", "fp32", 1.0),
        row("openvino-fp32", "openvino", "fp32", 2.0),
        row("openvino-int8", "openvino", "int8", 1.0),
    ]
    [verdict] = recommend(rows)["int8"]
    [at] = verdict["at"]
    assert at["vs_engine_fp32"] == {"artifact": "openvino-fp32", "speedup": 2.0}
    assert at["vs_fastest_fp32"] == {"artifact": "onnx-fp32", "speedup": 1.0} and not at["pays"]
    assert (
        "does not pay at 2 threads" in verdict["note"]
        and "against its engine's FP32, openvino-fp32: 2.00×" in verdict["note"]
    )


def test_throughput_scenarios_rank_by_items_per_second():
    rows = [
        {**row("onnx-fp32", "onnxruntime", "fp32", 1.0), "scenario": "offline", "throughput_ips": 500.0},
        {**row("openvino-fp32", "openvino", "fp32", 9.0), "scenario": "offline", "throughput_ips": 900.0},
    ]
    group = only(recommend(rows, 1.0))
    assert group["pick"]["artifact"] == "openvino-fp32" and group["pick"]["unit"] == "items/s"
    assert group["alternatives"][0]["lost"] == "slower by 1.80×"


def test_default_threads_pool_backends_and_groups_split_by_batch():
    rows = [
        row("onnx-fp32", "onnxruntime", "fp32", 3.0, threads=2),
        row("openvino-fp32", "openvino", "fp32", 2.0, threads=16),
    ]
    doc = add_recommendation({"settings": {"threads": None}, "results": rows})
    assert only(doc["recommendation"])["threads"] is None
    assert only(doc["recommendation"])["pick"]["artifact"] == "openvino-fp32"
    assert (
        "batch 1, each backend's default threads: deploy openvino-fp32"
        in recommendation_lines(doc["recommendation"])[0]
    )
    doc = add_recommendation({"settings": {"threads": [2, 16]}, "results": rows + [{**rows[0], "batch": 4}]})
    assert [(g["batch"], g["threads"]) for g in doc["recommendation"]["groups"]] == [(1, 2), (1, 16), (4, 2)]


@pytest.mark.parametrize("bad", [-1, float("nan"), "two", True])
def test_a_bad_budget_is_a_user_error(bad):
    with pytest.raises(InvalidOptionError, match="max-accuracy-drop"):
        recommend(machine(), bad)


def test_the_budget_the_export_recorded_is_read_defensively(tmp_path):
    from edgecv.runfolder import MANIFEST_NAME

    def manifest(options):
        (tmp_path / MANIFEST_NAME).write_text(json.dumps({"schema": "edgecv.manifest/1", "options": options}))

    manifest({"max_accuracy_drop": 0.5})
    assert recorded_budget(tmp_path) == 0.5
    assert recorded_budget(tmp_path / "model.onnx") is None  # not there: nothing to read
    (tmp_path / "model.onnx").write_bytes(b"")
    assert recorded_budget(tmp_path / "model.onnx") == 0.5  # an artifact inside the run folder
    for unusable in ({"max_accuracy_drop": "lots"}, {"max_accuracy_drop": -2}, {}):
        manifest(unusable)
        assert recorded_budget(tmp_path) is None


def test_accuracy_that_eval_merges_in_later_updates_a_recorded_recommendation():
    from edgecv.evaluate.records import EvalReport, EvalResult, merge_into_results

    rows = [r for r in machine(eval_figures=False) if r["artifact"] != "pytorch"]
    doc = add_recommendation({"settings": {"threads": 2}, "results": rows}, 1.0, "flag")
    assert only(doc["recommendation"])["basis"] == "speed only"

    def scored(artifact, backend, precision, top1, delta=None):
        return EvalResult(
            artifact, backend, None, precision, precision, backend, "classification", {"top1": top1}, 1, [1.0] * 8,
            None, None, reference=None if delta is None else "onnx-fp32", delta={} if delta is None else {"top1": delta},
        )  # fmt: skip

    report = EvalReport(
        target={"path": "run"},
        data={"path": "digits"},
        task="classification",
        input_spec={},
        results=[
            scored("onnx-fp32", "onnxruntime", "fp32", 0.90),
            scored("onnx-int8-cpu", "onnxruntime", "int8", 0.896, -0.004),
            scored("openvino-int8", "openvino", "int8", 0.879, -0.021),
        ],
    )
    merge_into_results(doc, report)
    group = only(doc["recommendation"])
    assert group["basis"] == "accuracy budget" and group["pick"]["artifact"] == "onnx-int8-cpu"
    assert doc["recommendation"]["budget"]["source"] == "flag"


def test_an_fp32_artifact_that_ran_in_bf16_is_not_the_accuracy_reference():
    rows = machine() + [
        {**row("openvino-fp32", "openvino", "fp32", 1.0), "precision": "bf16"}
    ]  # OpenVINO's AMX default
    rec = recommend(rows, 1.0)
    group = only(rec)
    assert group["pick"]["artifact"] == "onnx-int8-cpu"
    lost = {a["artifact"]: a["lost"] for a in group["alternatives"]}
    assert lost["openvino-fp32"].startswith("ran in bf16, whose accuracy is not measured (--precision f32")
    # Without a budget it is the fastest, and says what it ran in.
    [head, *_] = recommendation_lines(recommend(rows))
    assert (
        "deploy openvino-fp32 (openvino, fp32 (ran bf16))" in head
        and "it ran in bf16, in which its accuracy is not measured" in head
    )
