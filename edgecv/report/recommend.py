"""Which artifact to deploy: per batch, scenario, device and thread count, the fastest artifact
whose accuracy drop against FP32 is within a budget, the alternatives and why each lost, and at
which thread counts each INT8 artifact pays.

Everything here reads plain results rows (``results.json``'s, or a sweep's): speed is the
scenario's headline figure (p90 latency, or throughput), the drop is ``-100 × accuracy.delta``
(points of the metric ``edgecv eval`` reports first: top-1 for classifiers, mAP@[.5:.95] for
detectors), and an FP32 artifact is the reference, so its drop is 0. An artifact without an
accuracy figure is never called within a budget: without any figures the pick is by speed alone
and says so, naming the fastest FP32 artifact as the choice that risks no accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from .recommendation_text import int8_sentence

# Drops this close to the budget count as within it (figures are rounded fractions).
_EPSILON = 1e-9


def headline(row: dict[str, Any]) -> tuple[str, float, str]:
    """(figure, value, unit) a row's scenario reports first, as ``BenchResult.headline``."""
    concurrency = row.get("concurrency") or {}
    if row.get("scenario") == "throughput" and concurrency.get("items_per_s") is not None:
        return "throughput", float(concurrency["items_per_s"]), "items/s"
    if row.get("scenario") == "offline":
        return "throughput", float(row["throughput_ips"]), "items/s"
    return "p90", float(row["latency"]["p90_ms"]), "ms"


def headline_name(row: dict[str, Any]) -> str:
    return "throughput" if row.get("scenario") in ("throughput", "offline") else "p90"


def has_headline(row: dict[str, Any]) -> bool:
    """Whether the row has its scenario's headline figure (a TensorRT 8.0–8.5 log gives p99 only)."""
    try:
        headline(row)
    except (KeyError, TypeError, ValueError):
        return False
    return True


def cost(row: dict[str, Any]) -> float:
    """Lower is faster: latency as it is, throughput negated."""
    _, value, unit = headline(row)
    return value if unit == "ms" else -value


def speedup(row: dict[str, Any], over: dict[str, Any]) -> float:
    """How many times faster ``row`` is than ``over`` on their headline figure."""
    (_, mine, unit), (_, theirs, _) = headline(row), headline(over)
    if unit == "ms":
        return theirs / mine if mine > 0 else math.inf
    return mine / theirs if theirs > 0 else math.inf


def precision_of(row: dict[str, Any]) -> str:
    return str(row.get("artifact_precision") or row.get("precision") or "")


def deployable(row: dict[str, Any]) -> bool:
    """An artifact a user could ship: not the PyTorch baseline, nor the TensorRT-flavour INT8 graph
    timed in ONNX Runtime (a reference figure; TensorRT is where it runs)."""
    return row.get("backend") != "torch" and not (
        row.get("intended_for") == "tensorrt" and row.get("backend") == "onnxruntime"
    )


def ran_lower(row: dict[str, Any]) -> str | None:
    """The lower float precision an FP32 artifact ran in (OpenVINO's bf16 default on AMX and
    AVX512-BF16 CPUs), which its accuracy figure, scored in f32, does not vouch for; else None."""
    ran = row.get("precision")
    return ran if precision_of(row) == "fp32" and ran in ("bf16", "fp16") else None


def drop_points(row: dict[str, Any]) -> float | None:
    """The accuracy lost against FP32 in points (negative: gained); 0 for FP32 run as FP32; None
    when unknown."""
    if precision_of(row) == "fp32":
        return None if ran_lower(row) else 0.0
    delta = (row.get("accuracy") or {}).get("delta")
    return None if delta is None else -100.0 * float(delta)


def check_budget(value: Any, what: str = "--max-accuracy-drop") -> float:
    """A budget in points: a finite number ≥ 0."""
    from edgecv.errors import InvalidOptionError

    try:
        budget = float(value)
    except (TypeError, ValueError):
        budget = math.nan
    if isinstance(value, bool) or not math.isfinite(budget) or budget < 0:
        raise InvalidOptionError(f"{what} takes a number of points ≥ 0 (1 = one point of top-1 or mAP), got {value!r}")
    return budget


def recorded_budget(target: str | Path) -> float | None:
    """The ``max_accuracy_drop`` the export of ``target`` (a run folder, or an artifact in one)
    recorded in its manifest's options; None where there is none or it is not a usable number."""
    from edgecv.errors import UserInputError
    from edgecv.runfolder import read_manifest

    path = Path(str(target))
    for folder in [path, *list(path.resolve().parents)[:2]] if path.exists() else []:
        try:
            options = read_manifest(folder).get("options")
        except (UserInputError, OSError, ValueError):
            continue
        try:
            return check_budget(options.get("max_accuracy_drop") if isinstance(options, dict) else None)
        except UserInputError:
            return None
    return None


def _group_key(row: dict[str, Any], by_threads: bool) -> tuple:
    device = str(row.get("device") or "cpu").lower()
    return row.get("batch"), row.get("scenario"), device, row.get("threads") if by_threads else None


def _status(row: dict[str, Any], budget: float | None) -> str:
    drop = drop_points(row)
    if precision_of(row) == "fp32" and not ran_lower(row):
        return "reference"
    if drop is None:
        return "unmeasured"
    if budget is None:
        return "measured"
    return "within" if drop <= budget + _EPSILON else "over"


def _entry(row: dict[str, Any], budget: float | None) -> dict[str, Any]:
    figure, value, unit = headline(row)
    return {
        "artifact": row.get("artifact"),
        "backend": row.get("backend"),
        "precision": precision_of(row) or None,
        "ran": ran_lower(row),
        "figure": figure,
        "value": value,
        "unit": unit,
        "drop_pts": drop_points(row),
        "status": _status(row, budget),
    }


def _why_lost(alt: dict[str, Any], row: dict[str, Any], pick: dict[str, Any], budget: float | None) -> str:
    if alt["status"] == "over":
        return f"{alt['drop_pts'] - budget:.2f} pt over the {budget:g} pt budget"
    if alt["status"] == "unmeasured" and budget is not None and pick["status"] != "unmeasured":
        if alt.get("ran"):
            return f"ran in {alt['ran']}, whose accuracy is not measured (--precision f32 times it as scored)"
        return "accuracy not measured, so not known to be within the budget"
    if cost(row) == cost(pick["_row"]):
        return f"as fast ({alt['figure']} {alt['value']:.2f} {alt['unit']}), ranked after on accuracy, then name"
    return f"slower by {speedup(pick['_row'], row):.2f}×"


def _group(rows: list[dict[str, Any]], key: tuple, budget: float | None) -> dict[str, Any]:
    batch, scenario, device, threads = key

    def rank(row: dict[str, Any]) -> tuple:
        drop = drop_points(row)
        return cost(row), math.inf if drop is None else drop, precision_of(row) != "fp32", str(row.get("artifact"))

    ranked = sorted(rows, key=rank)
    measured = any((r.get("accuracy") or {}).get("value") is not None for r in ranked if precision_of(r) != "fp32")
    by_budget = budget is not None and measured
    entries = [{**_entry(r, budget), "_row": r} for r in ranked]
    eligible = [e for e in entries if e["status"] in ("reference", "within")] if by_budget else entries
    pick = eligible[0] if eligible else None
    alternatives = [
        {**{k: v for k, v in e.items() if k != "_row"}, "lost": _why_lost(e, e["_row"], pick, budget)}
        for e in entries
        if pick is not None and e is not pick
    ]
    fallback = None
    if pick is not None and pick["status"] == "unmeasured":
        fp32 = [e for e in entries if e["status"] == "reference"]
        fallback = {k: v for k, v in fp32[0].items() if k != "_row"} if fp32 else None
    return {
        "batch": batch,
        "scenario": scenario,
        "device": device,
        "threads": threads,
        "basis": "accuracy budget" if by_budget else "speed only",
        "pick": None if pick is None else {k: v for k, v in pick.items() if k != "_row"},
        "alternatives": alternatives,
        "fp32_fallback": fallback,
    }


def int8_verdicts(rows: Iterable[dict[str, Any]], by_threads: bool = True) -> list[dict[str, Any]]:
    """Per INT8 artifact (and batch, scenario, device): at each thread count, its speed-up over its
    own engine's FP32 artifact and over the fastest FP32 artifact there; it pays where it beats the
    fastest FP32 (ties lose: INT8 costs accuracy)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if deployable(row) and has_headline(row):
            groups.setdefault(_group_key(row, by_threads), []).append(row)
    verdicts: dict[tuple, dict[str, Any]] = {}
    for key, members in groups.items():
        fp32 = sorted((r for r in members if precision_of(r) == "fp32"), key=cost)
        for row in members:
            if precision_of(row) != "int8" or not fp32:
                continue
            engine = next((r for r in fp32 if r.get("backend") == row.get("backend")), None)
            verdict = verdicts.setdefault(
                (row.get("artifact"), *key[:3]),
                {
                    "artifact": row.get("artifact"),
                    "backend": row.get("backend"),
                    "batch": key[0],
                    "scenario": key[1],
                    "device": key[2],
                    "at": [],
                },
            )
            best = speedup(row, fp32[0])
            verdict["at"].append(
                {
                    "threads": key[3],
                    "vs_fastest_fp32": {"artifact": fp32[0].get("artifact"), "speedup": best},
                    "vs_engine_fp32": None
                    if engine is None
                    else {"artifact": engine.get("artifact"), "speedup": speedup(row, engine)},
                    "pays": best > 1.0,
                }
            )
    out = []
    for verdict in verdicts.values():
        verdict["at"].sort(key=lambda a: (a["threads"] is not None, a["threads"] or 0))
        verdict["pays_at"] = [a["threads"] for a in verdict["at"] if a["pays"]]
        verdict["loses_at"] = [a["threads"] for a in verdict["at"] if not a["pays"]]
        verdict["note"] = int8_sentence(verdict)
        out.append(verdict)
    return out


def recommend(
    rows: Sequence[dict[str, Any]],
    max_drop_pts: float | None = None,
    *,
    budget_source: str | None = None,
    by_threads: bool = True,
) -> dict[str, Any]:
    """The recommendation over results rows: one pick per (batch, scenario, device, thread count)
    with the alternatives and why each lost, and the INT8 verdicts. ``max_drop_pts``: the accuracy
    budget in points (None: none). ``by_threads=False`` pools rows timed at each backend's own
    default thread count instead of telling them apart."""
    budget = None if max_drop_pts is None else check_budget(max_drop_pts)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    unranked = []
    for row in rows:
        if not deployable(row):
            continue
        if has_headline(row):
            groups.setdefault(_group_key(row, by_threads), []).append(row)
        else:
            unranked.append({"artifact": row.get("artifact"), "why": f"no {headline_name(row)} figure to rank it by"})
    metrics = sorted(
        {str((r.get("accuracy") or {}).get("metric")) for r in rows if (r.get("accuracy") or {}).get("metric")}
    )
    measured = sorted(
        {str(r.get("artifact")) for r in rows if (r.get("accuracy") or {}).get("value") is not None and deployable(r)}
    )
    order = sorted(groups, key=lambda k: (k[0] or 0, str(k[1]), str(k[2]), k[3] is not None, k[3] or 0))
    return {
        "budget": {
            "max_drop_pts": budget,
            "source": budget_source if budget is not None else None,
            "metric": metrics[0] if len(metrics) == 1 else (metrics or None),
        },
        "accuracy_measured_for": measured,
        "groups": [_group(groups[k], k, budget) for k in order],
        "not_ranked": unranked,
        "int8": int8_verdicts(rows, by_threads),
    }


def add_recommendation(
    doc: dict[str, Any], max_drop_pts: float | None = None, budget_source: str | None = None
) -> dict[str, Any]:
    """Put the recommendation on a results document (after its rows got their accuracy)."""
    by_threads = (doc.get("settings") or {}).get("threads") is not None
    doc["recommendation"] = recommend(
        doc.get("results") or [], max_drop_pts, budget_source=budget_source, by_threads=by_threads
    )
    return doc


def refresh_recommendation(doc: dict[str, Any]) -> dict[str, Any]:
    """Recompute a recorded recommendation, with its budget, after the rows changed (``edgecv eval``
    merged accuracy into them); a document without one is left as it is."""
    rec = doc.get("recommendation")
    if isinstance(rec, dict):
        budget = rec.get("budget") if isinstance(rec.get("budget"), dict) else {}
        add_recommendation(doc, budget.get("max_drop_pts"), budget.get("source"))
    return doc


def recommendation_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The document's recommendation; one by speed and recorded accuracy, without a budget, for a
    document written before benchmarks recorded one."""
    rec = doc.get("recommendation")
    if isinstance(rec, dict) and isinstance(rec.get("groups"), list):
        return rec
    return add_recommendation(dict(doc))["recommendation"]
