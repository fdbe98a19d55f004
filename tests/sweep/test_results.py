"""Ranking a sweep: the Pareto front, the recommendation under each constraint, and published
figures kept apart from measured ones."""

from __future__ import annotations

from edgecv.sweep.published import published_top1
from edgecv.sweep.results import pareto_ids, recommend


def row(name, p90, measured=None, published=None):
    return {
        "id": name,
        "p90_ms": p90,
        "accuracy": None if measured is None else {"metric": "top1", "value": measured / 100, "label": "measured"},
        "published": None if published is None else {"top1": published, "source": "paper", "label": "published"},
    }


ROWS = [row("a", 2.0, 60), row("b", 5.0, 70), row("c", 6.0, 65), row("d", 12.0, 75), row("e", 1.0)]


def test_pareto_front_fastest_first():
    assert pareto_ids(ROWS, "measured") == ["a", "b", "d"]


def test_max_latency_picks_most_accurate_within_it():
    rec = recommend(ROWS, max_latency_ms=10)
    assert rec["choice"] == "b" and rec["alternatives"] == ["c", "a"] and rec["basis"] == "measured"


def test_min_accuracy_picks_fastest_reaching_it():
    rec = recommend(ROWS, min_accuracy=64)
    assert rec["choice"] == "b" and rec["alternatives"] == ["c", "d"]


def test_nothing_meets_the_constraint():
    rec = recommend(ROWS, max_latency_ms=0.5)
    assert rec["choice"] is None and "no point meets" in rec["reason"] and "e" in rec["reason"]
    assert recommend(ROWS, min_accuracy=90)["choice"] is None


def test_measured_and_published_are_never_ranked_together():
    rows = [row("measured", 5.0, 60), row("published-only", 1.0, published=80)]
    rec = recommend(rows, max_latency_ms=10)
    assert rec["basis"] == "measured" and rec["choice"] == "measured" and rec["alternatives"] == []
    rows = [row("p1", 5.0, published=72.0), row("p2", 2.0, published=63.7), row("t", 1.0)]
    rec = recommend(rows, max_latency_ms=10)
    assert rec["basis"] == "published" and rec["choice"] == "p1"


def test_timing_only_sweep_recommends_the_fastest_within_budget():
    rows = [row("x", 3.0), row("y", 1.5), row("z", 20.0)]
    rec = recommend(rows, max_latency_ms=10)
    assert rec["choice"] == "y" and rec["basis"] is None


def test_published_figures_match_only_the_papers_configurations():
    assert published_top1("mobilenetv1", 0.75, 224, {}, 1000).top1 == 68.4
    assert published_top1("mobilenetv1", 1.0, 160, {}, 1000).top1 == 67.2
    assert "Table 7" in published_top1("mobilenetv1", 1.0, 128, {}, 1000).source
    assert published_top1("mobilenetv3", 1.0, 224, {"variant": "small"}, 1000).top1 == 67.4
    assert published_top1("shufflenetv2", 1.0, (224, 224), {}, 1000).top1 == 69.4
    assert published_top1("mobilenetv1", 0.75, 160, {}, 1000) is None  # not in a table: left out
    assert published_top1("mobilenetv2", 1.0, 224, {}, 10) is None  # another head: not ImageNet's
