"""The INT8 accuracy budget: keep the most INT8-sensitive layers in float until an artifact's metric
drop against FP32 (top-1 or mAP@[.5:.95] points, on the user's evaluation data) is within bounds.

For the ONNX flavours (ONNX Runtime has no such loop) :func:`fit_float_set` walks the sensitivity
ranking: it re-quantizes with the first 1, 2, 4, … ranked layers in float until the budget holds,
then bisects between the last count that failed and the first that held, so a network of a hundred
layers costs about a dozen quantizations, not a hundred. The drop is not strictly monotonic in the
count; only a measured candidate is ever chosen, and when none holds, the one with the smallest
drop is kept and the outcome says the budget was not reached. The OpenVINO IR takes NNCF's own
``quantize_with_accuracy_control`` (:mod:`.openvino_int8`) with the same validation.

The validation is passed down (``edgecv.evaluate.validation`` builds it from ``--eval-data``), so
calibration scores candidates without knowing about data sets.
"""

from __future__ import annotations

import functools
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx

from edgecv.errors import InvalidOptionError
from edgecv.onnx_graph import OnnxGraph

from .fidelity import RunFn
from .sensitivity import LAYER_OPS

TIMING_ROUNDS = 30


class Validation(Protocol):
    """What the budget measures with: a metric in points of a "batch in, outputs out" function."""

    @property
    def metric(self) -> str: ...

    def __len__(self) -> int: ...

    def describe(self) -> dict[str, Any]: ...

    def score(self, run: RunFn, indices: Sequence[int] | None = None) -> float: ...


@dataclass(frozen=True)
class AccuracyBudget:
    max_drop: float  # points of the validation's metric
    validation: Validation

    def __post_init__(self) -> None:
        if not np.isfinite(self.max_drop) or self.max_drop < 0:
            raise InvalidOptionError(f"--max-accuracy-drop must be a number of points ≥ 0, got {self.max_drop}")


@dataclass
class BudgetOutcome:
    """One INT8 artifact under the budget: its metric before and after, and the price paid."""

    method: str
    metric: str
    max_drop: float
    fp32: float
    before: float  # the INT8 metric with only the flavour's own float set
    after: float  # the INT8 metric of the artifact written
    reverted: list[str]  # layers put back in float to hold the budget, most sensitive first
    trials: list[dict[str, Any]] = field(default_factory=list)  # {"reverted": n, "drop": points}
    latency_ms: dict[str, float] | None = None  # {"before", "after"}: medians, interleaved

    @property
    def drop_before(self) -> float:
        return self.fp32 - self.before

    @property
    def drop_after(self) -> float:
        return self.fp32 - self.after

    @property
    def reached(self) -> bool:
        return self.drop_after <= self.max_drop + 1e-9

    def to_dict(self) -> dict[str, Any]:
        latency = None
        if self.latency_ms:
            b, a = self.latency_ms["before"], self.latency_ms["after"]
            latency = {
                "before": round(b, 4),
                "after": round(a, 4),
                "cost_ms": round(a - b, 4),
                "ratio": round(a / b, 3),
            }
        return {
            "method": self.method,
            "metric": self.metric,
            "max_drop": self.max_drop,
            "fp32": round(self.fp32, 4),
            "int8_before": round(self.before, 4),
            "int8_after": round(self.after, 4),
            "drop_before": round(self.drop_before, 4),
            "drop_after": round(self.drop_after, 4),
            "reached": self.reached,
            "reverted": list(self.reverted),
            "trials": self.trials,
            "latency_ms": latency,
        }


def search_counts(drop_of: Callable[[int], float], layers: int, max_drop: float) -> int:
    """The count of ranked layers to keep in float: the smallest measured count whose drop holds
    (doubling, then bisecting), else the count with the smallest drop among those measured."""
    drops: dict[int, float] = {}

    def holds(k: int) -> bool:
        if k not in drops:
            drops[k] = drop_of(k)
        return drops[k] <= max_drop

    if holds(0) or layers == 0:
        return 0
    low, high = 0, 1
    while not holds(high):
        if high == layers:
            return min(drops, key=lambda k: (drops[k], k))
        low, high = high, min(2 * high, layers)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if holds(mid) else (mid, high)
    return high


def fit_float_set(
    ranked: Callable[[], Sequence[str]],
    build: Callable[[list[str], Path], None],
    runner: Callable[[Path], RunFn],
    budget: AccuracyBudget,
    fp32: float,
    work_dir: Path,
    final: Path,
    *,
    method: str = "edgecv: sensitivity-ranked layers back to float",
    note: Callable[[str], None] = lambda text: None,
) -> BudgetOutcome:
    """Quantize with the first ``k`` of ``ranked()`` in float (``build(extra float nodes, out)``)
    for the ``k`` :func:`search_counts` picks, and copy that candidate to ``final``. The ranking is
    asked for only when the artifact misses the budget as it is."""
    work_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[int, float] = {}
    files: dict[int, Path] = {}
    order: list[str] = []

    def drop_of(k: int) -> float:
        if k not in metrics:
            note(f"accuracy budget: measuring {work_dir.name} with {k} layer(s) back in float")
            files[k] = work_dir / f"candidate-{k}.onnx"
            build(order[:k], files[k])
            metrics[k] = budget.validation.score(runner(files[k]))
        return fp32 - metrics[k]

    if drop_of(0) > budget.max_drop:
        order.extend(ranked())
    chosen = search_counts(drop_of, len(order), budget.max_drop)
    shutil.copyfile(files[chosen], final)
    outcome = BudgetOutcome(
        method=method,
        metric=budget.validation.metric,
        max_drop=budget.max_drop,
        fp32=fp32,
        before=metrics[0],
        after=metrics[chosen],
        reverted=order[:chosen],
        trials=[{"reverted": k, "drop": round(fp32 - m, 4)} for k, m in metrics.items()],
    )
    if chosen:
        outcome.latency_ms = interleaved_latency(files[0], files[chosen], runner)
    return outcome


def float_closure(model: onnx.ModelProto, floats: Sequence[str]) -> list[str]:
    """``floats`` and every node that is not a layer (:data:`~.sensitivity.LAYER_OPS`) and reads
    only what float nodes produce: a layer's activation (Sigmoid and Mul of a SiLU, a Clip), a
    residual Add or a Concat once all its branches are float. A reverted layer then hands the next
    layer a float tensor rather than one quantized on its way out, and with every layer reverted
    the whole graph is float, so a budget can always be reached."""
    graph = OnnxGraph(model)
    kept = dict.fromkeys(floats)
    for node in graph.nodes:  # ONNX lists nodes in topological order
        if node.name in kept or node.op_type in LAYER_OPS:
            continue
        sources = [graph.producer[i] for i in node.input if i in graph.producer and not graph.is_constant(i)]
        if sources and all(src.name in kept for src in sources):
            kept[node.name] = None
    return list(kept)


def fit_flavour(
    quantize: Callable[[list[str], Path, dict[str, str]], dict[str, Any]],
    prepared: onnx.ModelProto,
    budget: AccuracyBudget,
    ranking: Callable[[], Sequence[str]],
    excluded: Sequence[str],
    reasons: dict[str, str],
    fp32: float,
    work_dir: Path,
    out: Path,
    note: Callable[[str], None] = lambda text: None,
) -> tuple[dict[str, Any], BudgetOutcome]:
    """One ONNX flavour quantized (``quantize(float nodes, out, reasons)``) with the fewest layers
    of ``ranking()`` (most sensitive first) in float that hold ``budget``, starting from the
    flavour's own float set ``excluded``; written to ``out``. ``prepared``: the graph quantized,
    for :func:`float_closure`. Returns the quantizer's record (``float_added``: every node the
    budget put in float) and the outcome."""
    from .runners import ort_runner

    def ranked() -> list[str]:
        return [n for n in ranking() if n not in excluded]

    infos: dict[int, dict[str, Any]] = {}
    why = f"--max-accuracy-drop {budget.max_drop:g}: back in float to hold the drop"

    def build(layers: list[str], path: Path) -> None:
        floats = float_closure(prepared, [*excluded, *layers])
        added = [n for n in floats if n not in excluded]
        infos[len(layers)] = quantize(floats, path, {**reasons, **dict.fromkeys(added, why)})
        infos[len(layers)]["float_added"] = added

    outcome = fit_float_set(ranked, build, ort_runner, budget, fp32, work_dir, out, note=note)
    return infos[len(outcome.reverted)], outcome


def interleaved_latency(before: Path, after: Path, runner: Callable[[Path], RunFn]) -> dict[str, float]:
    """Median milliseconds per call of two artifacts, timed in alternation so that a load change on
    the machine touches both alike. A reported figure, never a pass/fail one."""
    from .precision.measure import interleaved_times

    x = _input_for(before)
    runs = {name: functools.partial(runner(path), x) for name, path in (("before", before), ("after", after))}
    for _ in range(2):  # warm-up beyond the one call interleaved_times makes of each
        for run in runs.values():
            run()
    times = interleaved_times(runs, TIMING_ROUNDS, 1, min_rounds=TIMING_ROUNDS, margin=math.inf)
    return {name: t["median_ms"] for name, t in times.items()}


def _input_for(path: Path) -> np.ndarray:
    """A zero input of the shape the artifact takes (a dynamic dimension as 1)."""
    if path.suffix == ".xml":
        import openvino as ov

        shape = ov.Core().read_model(str(path)).inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else 1 for d in shape]
    else:
        import onnx

        from edgecv.onnx_graph import first_input

        value = first_input(onnx.load(str(path), load_external_data=False))
        dims = [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in value.type.tensor_type.shape.dim
        ]
    return np.zeros(dims, np.float32)


def fit_openvino(
    quantize: Callable[[Path, Any], dict[str, Any]],
    fp32_xml: Path,
    budget: AccuracyBudget,
    work_dir: Path,
    final: Path,
    note: Callable[[str], None] = lambda text: None,
) -> tuple[dict[str, Any], BudgetOutcome]:
    """The OpenVINO IR under the budget: NNCF's plain quantization (``quantize(out_xml, None)``),
    and, when its drop is over, NNCF's ``quantize_with_accuracy_control`` (``quantize(out_xml,
    control)``) with the same validation; the better of the two is copied to ``final``."""
    from .openvino_int8 import AccuracyControl, quantized_layer_names
    from .runners import openvino_runner

    work_dir.mkdir(parents=True, exist_ok=True)
    validation = budget.validation
    fp32 = validation.score(openvino_runner(fp32_xml))
    plain = work_dir / "plain.xml"
    info = quantize(plain, None)
    before = validation.score(openvino_runner(plain))
    chosen, after, reverted = plain, before, []
    method = "NNCF quantize (the drop held without reverting)"
    if fp32 - before > budget.max_drop:
        note("accuracy budget: NNCF's accuracy-controlled quantization of the OpenVINO IR")
        method = "NNCF quantize_with_accuracy_control (absolute drop), edgecv's validation"
        controlled = work_dir / "controlled.xml"
        control = AccuracyControl(validation.score, len(validation), budget.max_drop)
        controlled_info = quantize(controlled, control)
        score = validation.score(openvino_runner(controlled))
        if score > before:
            chosen, after, info = controlled, score, controlled_info
            reverted = sorted(quantized_layer_names(plain) - quantized_layer_names(controlled))
    for suffix in (".xml", ".bin"):
        shutil.copyfile(chosen.with_suffix(suffix), final.with_suffix(suffix))
    outcome = BudgetOutcome(method, validation.metric, budget.max_drop, fp32, before, after, reverted)
    outcome.trials = [{"reverted": 0, "drop": round(fp32 - before, 4)}]
    if chosen != plain:
        outcome.trials.append({"reverted": len(reverted), "drop": round(fp32 - after, 4)})
        outcome.latency_ms = interleaved_latency(plain, chosen, openvino_runner)
    info["float_added"] = reverted
    return info, outcome


def budget_warning(artifact: str, outcome: BudgetOutcome) -> str:
    return (
        f"{artifact}: the {outcome.metric} drop is {outcome.drop_after:.2f} points, over --max-accuracy-drop "
        f"{outcome.max_drop:g} even with {len(outcome.reverted)} layer(s) back in float; kept the best found"
    )
