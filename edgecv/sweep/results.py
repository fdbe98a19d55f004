"""A sweep's results: one row per point × engine × threads, the accuracy–latency Pareto front, and
the recommendation under the user's constraint.

Latency is the p90 of the benchmark (the single-stream headline everywhere in edgecv). Accuracy is
measured (``edgecv eval`` on the sweep's data) or published (the paper's ImageNet figure); the two
are never ranked together: when any row has a measured figure, ranking uses measured figures only.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable

from edgecv.report.format import pareto_front
from edgecv.report.sweep_compare import SWEEP_SCHEMA

from .grid import SweepPlan
from .point import Point
from .published import published_top1

ALTERNATIVES = 3


def row_id(row: dict[str, Any]) -> str:
    threads = "auto" if row["threads"] is None else row["threads"]
    return f"{row['point']}/{row['backend']}/t{threads}"


def point_rows(point: Point, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The result rows of one finished point's record."""
    export = record["export"]
    # The papers measured their float models: an INT8 or FP16 point of the same configuration has
    # lost an unknown amount, so it carries no published figure (only --data measures it).
    published = (
        published_top1(point.model, point.width_mult, point.resolution, point.variant, point.num_classes)
        if point.precision == "fp32"
        else None
    )
    rows = []
    for bench in record["rows"]:
        measured = (record.get("accuracy") or {}).get(bench["artifact"])
        row = {
            "point": point.key,
            "model": point.model,
            "variant": point.variant,
            "width_mult": point.width_mult,
            "resolution": point.resolution,
            "precision": point.precision,
            "backend": bench["backend"],
            "artifact": bench["artifact"],
            "threads": bench["threads"],
            "p90_ms": bench["p90_ms"],
            "median_ms": bench["median_ms"],
            "throughput_ips": bench["throughput_ips"],
            "macs": export.get("macs"),
            "params": export.get("params"),
            "weights": point.weights,
            "timing_only": point.weights is None,
            "accuracy": None if not measured else {**measured, "label": "measured"},
            "published": None if published is None else published.to_dict(),
            "run_dir": f"runs/{point.run_name}",
        }
        row["id"] = row_id(row)
        rows.append(row)
    return rows


def accuracy_basis(rows: Iterable[dict[str, Any]]) -> str | None:
    """ "measured" when any row has a measured figure, else "published" when any has one, else None."""
    rows = list(rows)
    if any(r.get("accuracy") and r["accuracy"].get("value") is not None for r in rows):
        return "measured"
    if any(r.get("published") for r in rows):
        return "published"
    return None


def accuracy_pct(row: dict[str, Any], basis: str | None) -> float | None:
    """The row's accuracy in percent on ``basis``; None when it has none there."""
    if basis == "measured":
        value = (row.get("accuracy") or {}).get("value")
        return None if value is None else 100.0 * value
    if basis == "published":
        return (row.get("published") or {}).get("top1")
    return None


def pareto_ids(rows: list[dict[str, Any]], basis: str | None) -> list[str]:
    """Rows no other row beats on both p90 latency and accuracy, fastest first."""
    ranked = [r for r in rows if accuracy_pct(r, basis) is not None]
    front = pareto_front([(r["p90_ms"], accuracy_pct(r, basis)) for r in ranked])
    return [ranked[i]["id"] for i in front]


def recommend(
    rows: list[dict[str, Any]], max_latency_ms: float | None = None, min_accuracy: float | None = None
) -> dict[str, Any]:
    """The row to ship under the constraint and the next best, with the reason in words.

    ``--max-latency``: the most accurate row within it (ties: the faster). ``--min-accuracy``
    (percent): the fastest row reaching it. Neither: the most accurate row. Without any accuracy,
    only latency can decide: the fastest row within the budget."""
    basis = accuracy_basis(rows)
    if min_accuracy is not None and basis is None:
        return _answer(None, [], basis, "no point has an accuracy figure: --min-accuracy cannot be met")

    def acc(r: dict[str, Any]) -> float:
        value = accuracy_pct(r, basis)
        return float("-inf") if value is None else value

    candidates = [r for r in rows if basis is None or accuracy_pct(r, basis) is not None]
    if max_latency_ms is not None:
        within = [r for r in candidates if r["p90_ms"] <= max_latency_ms]
        if basis is None:
            ranked = sorted(within, key=lambda r: r["p90_ms"])
            why = f"fastest within p90 ≤ {max_latency_ms:g} ms (no accuracy figures: timing only)"
        else:
            ranked = sorted(within, key=lambda r: (-acc(r), r["p90_ms"]))
            why = f"most accurate ({basis}) within p90 ≤ {max_latency_ms:g} ms"
        if not ranked:
            fastest = min(rows, key=lambda r: r["p90_ms"], default=None)
            tail = f"; the fastest is {fastest['id']} at {fastest['p90_ms']:.2f} ms" if fastest else ""
            return _answer(None, [], basis, f"no point meets p90 ≤ {max_latency_ms:g} ms{tail}")
    elif min_accuracy is not None:
        ranked = sorted((r for r in candidates if acc(r) >= min_accuracy), key=lambda r: (r["p90_ms"], -acc(r)))
        why = f"fastest with {basis} accuracy ≥ {min_accuracy:g} %"
        if not ranked:
            best = max(candidates, key=acc, default=None)
            tail = f"; the most accurate is {best['id']} at {acc(best):.2f} %" if best else ""
            return _answer(None, [], basis, f"no point reaches {basis} accuracy ≥ {min_accuracy:g} %{tail}")
    elif basis is None:
        ranked = sorted(rows, key=lambda r: r["p90_ms"])
        why = "fastest (no constraint given, no accuracy figures)"
    else:
        ranked = sorted(candidates, key=lambda r: (-acc(r), r["p90_ms"]))
        why = f"most accurate ({basis}; no constraint given)"
    return _answer(ranked[0], ranked[1 : 1 + ALTERNATIVES], basis, why)


def _answer(choice: dict | None, alternatives: list[dict], basis: str | None, reason: str) -> dict[str, Any]:
    return {
        "choice": None if choice is None else choice["id"],
        "alternatives": [r["id"] for r in alternatives],
        "basis": basis,
        "reason": reason,
    }


def constraint_text(plan: SweepPlan) -> str:
    if plan.max_latency_ms is not None:
        return f"p90 latency ≤ {plan.max_latency_ms:g} ms"
    if plan.min_accuracy is not None:
        return f"accuracy ≥ {plan.min_accuracy:g} %"
    return "none"


def sweep_document(plan: SweepPlan, records: Iterable[tuple[Point, dict[str, Any] | None]]) -> dict[str, Any]:
    """``sweep.json``: the rows of every finished point, the failed and unfinished points, the
    Pareto front and the recommendation."""
    from edgecv.sysinfo import backend_versions, machine_info
    from edgecv.version import __version__

    rows: list[dict[str, Any]] = []
    failed, unfinished, untimed = [], [], []
    for point, rec in records:
        if rec is None:
            unfinished.append(point.key)
        elif rec.get("status") == "failed":
            err = rec.get("error") or {}
            failed.append({"point": point.key, "stage": err.get("stage"), "message": err.get("message")})
        elif not rec.get("rows"):
            untimed.append(point.key)
        else:
            rows.extend(point_rows(point, rec))
    basis = accuracy_basis(rows)
    return {
        "schema": SWEEP_SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "edgecv_version": __version__,
        "plan": plan.to_dict(),
        "constraint": constraint_text(plan),
        "machine": machine_info(),
        "versions": backend_versions(),
        "latency": "p90 of single-stream calls, batch 1",
        "rows": rows,
        "failed": failed,
        "unfinished": unfinished,
        "untimed": untimed,  # done, but no engine asked for has an artifact of the point's precision
        "accuracy_basis": basis,
        "pareto": pareto_ids(rows, basis),
        "recommendation": recommend(rows, plan.max_latency_ms, plan.min_accuracy),
    }
