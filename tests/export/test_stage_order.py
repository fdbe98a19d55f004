"""Export stages run in the order their declared dependencies give (graphlib), not in the order
they happen to be defined."""

from __future__ import annotations

import pytest

from edgecv.export.stages import STAGES, Stage, ordered_stages


def _stage(name, after=()):
    return type(f"S_{name}", (Stage,), {"name": name, "title": name, "after": tuple(after)})()


def test_registered_stages_run_after_what_they_need():
    order = [s.name for s in ordered_stages()]
    assert sorted(order) == sorted(s.name for s in STAGES)
    for stage in STAGES:
        for dep in stage.after:
            assert order.index(dep) < order.index(stage.name), (dep, stage.name)


def test_definition_order_does_not_matter():
    stages = [
        _stage("engine", ["int8"]),
        _stage("int8", ["simplify"]),
        _stage("simplify", ["export"]),
        _stage("export"),
    ]
    assert [s.name for s in ordered_stages(stages)] == ["export", "simplify", "int8", "engine"]


@pytest.mark.parametrize(
    "stages, message",
    [
        ([_stage("a", ["b"]), _stage("b", ["a"])], "cycle"),
        ([_stage("a", ["missing"])], "do not exist"),
    ],
)
def test_bad_dependencies_are_reported(stages, message):
    with pytest.raises(RuntimeError, match=message):
        ordered_stages(stages)
