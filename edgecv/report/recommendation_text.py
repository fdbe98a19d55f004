"""The recommendation of :mod:`edgecv.report.recommend` in sentences, which the terminal, report.md
and report.html all print: each pick with its alternatives indented under it, then where each INT8
artifact pays."""

from __future__ import annotations

from typing import Any, Sequence

from .format import DASH, threads_words

METRIC_NAMES = {"top1": "top-1", "map": "mAP@[.5:.95]"}
BUDGET_SOURCES = {"flag": "--max-accuracy-drop", "manifest": "the run folder's manifest"}


def _figure(entry: dict[str, Any]) -> str:
    return f"{entry['figure']} {entry['value']:.2f} {entry['unit']}"


def _drop(entry: dict[str, Any]) -> str:
    drop = entry.get("drop_pts")
    if entry.get("status") == "reference":
        return "FP32, the accuracy reference"
    if entry.get("ran"):
        return f"FP32 run in {entry['ran']}: accuracy not measured in {entry['ran']}"
    return "accuracy not measured" if drop is None else f"drop {drop:.2f} pt"


def _precision(entry: dict[str, Any]) -> str:
    built = entry.get("precision") or DASH
    return f"{built} (ran {entry['ran']})" if entry.get("ran") else built


def _where(group: dict[str, Any]) -> str:
    parts = [f"batch {group['batch']}"]
    if group["device"] in ("cpu", None):
        parts.append(threads_words(group["threads"]))
    else:
        parts.append(f"on {group['device']}")
    if group["scenario"] != "single-stream":
        parts.append(str(group["scenario"]))
    return ", ".join(parts)


def group_lines(rec: dict[str, Any], group: dict[str, Any]) -> list[str]:
    """The pick of one group as a sentence, then one line per alternative."""
    budget = rec["budget"]
    metric = budget.get("metric")
    metric_words = METRIC_NAMES.get(metric, str(metric)) if isinstance(metric, str) else "accuracy"
    pick = group["pick"]
    where = _where(group)
    if pick is None:
        return [
            f"{where}: no artifact is within the {budget['max_drop_pts']:g} pt {metric_words} budget "
            "(no FP32 artifact was timed here either)"
        ]
    head = f"{where}: deploy {pick['artifact']} ({pick['backend']}, {_precision(pick)}), {_figure(pick)}"
    if group["basis"] == "accuracy budget":
        source = BUDGET_SOURCES.get(budget.get("source"), "")
        head += (
            f", the fastest within the {budget['max_drop_pts']:g} pt {metric_words} budget"
            + (f" (from {source})" if source else "")
            + f": {_drop(pick)}"
        )
    elif pick["status"] == "unmeasured":
        head += (
            f", by speed only: it ran in {pick['ran']}, in which its accuracy is not measured (--precision f32 "
            "times it as scored)"
            if pick.get("ran")
            else ", by speed only: its accuracy is not measured (`edgecv eval RUN --data …`)"
        )
        if budget.get("max_drop_pts") is not None:
            head += f", so the {budget['max_drop_pts']:g} pt budget cannot be checked"
        fallback = group.get("fp32_fallback")
        if fallback:
            head += (
                f"; the fastest FP32 artifact, which risks no accuracy, is {fallback['artifact']} ({_figure(fallback)})"
            )
    else:
        head += f", by speed only (no accuracy budget; --max-accuracy-drop sets one): {_drop(pick)}"
    lines = [head]
    for alt in group["alternatives"]:
        lines.append(f"  not {alt['artifact']} ({_figure(alt)}, {_drop(alt)}): {alt['lost']}")
    return lines


def _thread_list(counts: Sequence[int | None]) -> str:
    if counts == [None]:
        return "each backend's default threads"
    named = [str(c) for c in counts if c is not None]
    return ", ".join(named) + (" thread" if named == ["1"] else " threads")


def _speedups_text(at: list[dict[str, Any]], key: str, what: str) -> str:
    """``against the fastest FP32, onnx-fp32: 1.88× at 1 thread, 0.94× at 4 threads``."""
    names = list(dict.fromkeys(a[key]["artifact"] for a in at))
    each = [
        f"{a[key]['speedup']:.2f}× at {threads_words(a['threads'])}"
        + (f" ({a[key]['artifact']})" if len(names) > 1 else "")
        for a in at
    ]
    return f"against {what}" + (f", {names[0]}" if len(names) == 1 else "") + ": " + ", ".join(each)


def int8_sentence(verdict: dict[str, Any]) -> str:
    """Where one INT8 artifact pays and where it loses, with the speed-ups behind it."""
    at = verdict["at"]
    pays, loses = verdict["pays_at"], verdict["loses_at"]
    if not loses:
        head = f"INT8 pays at {_thread_list(pays)}"
    elif not pays:
        head = f"INT8 does not pay at {_thread_list(loses)}: use an FP32 artifact there"
    else:
        head = f"INT8 pays at {_thread_list(pays)} and loses at {_thread_list(loses)}"
    figures = _speedups_text(at, "vs_fastest_fp32", "the fastest FP32")
    if any(a["vs_engine_fp32"] and a["vs_engine_fp32"] != a["vs_fastest_fp32"] for a in at):
        figures += "; " + _speedups_text([a for a in at if a["vs_engine_fp32"]], "vs_engine_fp32", "its engine's FP32")
    return f"{verdict['artifact']} (batch {verdict['batch']}): {head} ({figures})"


def recommendation_lines(rec: dict[str, Any]) -> list[str]:
    """Every sentence of the recommendation: each group's pick and alternatives, which accuracy
    figures exist, then the INT8 verdicts."""
    lines = []
    for group in rec["groups"]:
        lines += group_lines(rec, group)
    measured = rec.get("accuracy_measured_for") or []
    budget = rec["budget"].get("max_drop_pts")
    if budget is None and measured:
        lines.append(f"accuracy figures from edgecv eval: {', '.join(measured)}; --max-accuracy-drop D picks by them")
    lines += [f"not ranked: {u['artifact']} ({u['why']})" for u in rec.get("not_ranked") or []]
    lines += [f"int8: {v['note']}" for v in rec.get("int8") or []]
    return lines
