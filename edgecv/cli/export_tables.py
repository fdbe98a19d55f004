"""The tables and lines `edgecv export` prints once the run folder is written: its artifacts with
their verification and INT8 figures, the INT8 sensitivity ranking, the INT8 stage's one-line summary."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from edgecv.export.pipeline import ExportResult


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def artifact_table(result: ExportResult) -> Any:
    from .tables import FittedTable

    artifacts = result.summary()["artifacts"]
    detector = (result.manifest.get("input_spec") or {}).get("task") == "detection"
    figures = (
        (("max_abs", "max |Δ| vs torch"), ("matched", "dets matched"), ("fidelity", "INT8 mAP vs FP32 / kept"))
        if detector
        else (
            ("max_abs", "max |Δ| vs torch"),
            ("cosine", "cosine"),
            ("top1", "top-1 agr."),
            ("fidelity", "INT8 top-1 / SQNR"),
        )
    )
    columns = (("artifact", "artifact"), ("file", "file"), ("for", "for"), ("size", "size MB"), *figures)
    rows = [_artifact_row(a, result.run_dir) for a in artifacts]
    return FittedTable(
        columns=columns,
        rows=rows,
        # what the reader copies (names, files) and the INT8 figures first; the checks may move on
        priority=("file", "fidelity", "size", "for", "max_abs", "top1", "matched", "cosine"),
        right=frozenset(k for k, _ in columns if k not in ("artifact", "file", "for", "fidelity")),
        title=f"artifacts in {result.run_dir}",
    )


def _artifact_row(a: dict[str, Any], run_dir: Any) -> dict[str, str]:
    from edgecv.report.format import metric_percent

    v = a["verification"] or {}
    f = a["fidelity"] or {}
    fid = "—"
    if f.get("kind") == "detection":
        fid = f"mAP {metric_percent(f.get('map'))} / {_fmt(f.get('reproduced'), '.0%')} kept"
        if f.get("collapsed"):
            fid += " COLLAPSED: try --sensitivity"
    elif f:
        fid = f"{metric_percent(f.get('top1_agreement'))} / {_fmt(f.get('sqnr_db'), '.1f')} dB"
        if f.get("in_sample"):
            fid += " (in-sample)"
    size = a["size_bytes"] / 1e6 if a["size_bytes"] else None
    return {
        "artifact": a["name"],
        "file": str(a["path"]).rsplit(str(run_dir), 1)[-1].lstrip("/"),
        "for": a["intended_for"],
        "size": _fmt(size, ".2f"),
        "max_abs": _fmt(v.get("max_abs"), ".2e"),
        "matched": _fmt(v.get("matched_share"), ".1%"),
        "cosine": _fmt(v.get("cosine"), ".6f"),
        "top1": _fmt(v.get("top1_agreement"), ".0%"),
        "fidelity": fid,
    }


def int8_note(info: dict[str, Any]) -> str:
    """One line on how the INT8 stage spent its time and what it kept in float."""
    calib = info.get("calibration") or {}
    if calib.get("holdout_in_sample"):
        # Too few images to hold any out: fidelity was measured on calibration images and is optimistic.
        held = f"fidelity in-sample on {calib.get('holdout', '?')} of them"
    else:
        held = f"{calib.get('holdout', '?')} held out"
    parts = [f"{calib.get('calibration', '?')} images + {held}, {info.get('method')}"]
    if (info.get("ranges") or {}).get("reused"):
        parts.append("ranges reused")
    steps = ", ".join(f"{k.replace('quantize_', '')} {v:.1f}s" for k, v in info["timings_s"].items() if v >= 0.05)
    parts.append(steps)
    parts += _float_parts(info)
    return "; ".join(parts)


def _float_parts(info: dict[str, Any]) -> list[str]:
    kept = info.get("kept_float")
    if kept is None:  # a manifest written before the split: every excluded node
        return [f"{len(info['excluded'])} node(s) kept in float"] if info.get("excluded") else []
    parts = []
    if kept["layers"]:
        parts.append(f"{len(kept['layers'])} layer(s) kept in float")
    if kept["by_design_nodes"]:
        convs = kept["by_design_layers"]
        with_convs = f", with {convs} prediction layer(s)" if convs else ""
        parts.append(f"decode/NMS kept in float by design ({kept['by_design_nodes']} nodes{with_convs})")
    for flavour, label in (("cpu", "CPU flavour"), ("openvino", "OpenVINO IR")):
        plan = ((info.get("flavours") or {}).get(flavour) or {}).get("precision_plan")
        if plan:
            on = plan["measured_on"]
            parts.append(
                f"{label}: {len(plan['float_blocks'])} block(s) faster in float at {on['threads']} thread(s), "
                f"{plan['speedup_vs_all_int8']:.2f}× all-INT8"
            )
    return parts


def sensitivity_table(result: ExportResult, rows: int = 10) -> Table | None:
    """The most INT8-sensitive layers (``--sensitivity``), or None when they were not ranked."""
    info = result.manifest.get("stages", {}).get("int8", {}).get("info", {})
    ranking = info.get("sensitivity")
    if not ranking:
        return None
    kept = set(info.get("excluded") or [])
    in_sample = ranking.get("in_sample", (info.get("calibration") or {}).get("holdout_in_sample"))
    inputs = "calibration inputs (in-sample: too few to hold any out)" if in_sample else "held-out inputs"
    from edgecv.report.format import delta_points, metric_percent

    by_map = ranking.get("metric") == "map"
    if by_map:
        title = (
            f"INT8 sensitivity: mAP against FP32 detections gained by leaving one layer in float "
            f"(TensorRT-flavour graph, all INT8: {metric_percent(ranking['baseline_map'])} on {ranking['inputs']} {inputs})"
        )
        columns, keys, formats = ("gain mAP", "mAP"), ("gain_map", "map"), (delta_points, metric_percent)
    else:
        title = (
            f"INT8 sensitivity: output SQNR gained by leaving one layer in float (TensorRT-flavour graph, "
            f"all INT8: {ranking['baseline_sqnr_db']:.1f} dB on {ranking['inputs']} {inputs})"
        )
        columns, keys, formats = ("gain dB", "SQNR dB"), ("gain_db", "sqnr_db"), ("{:+.2f}".format, "{:.1f}".format)
    table = Table(title=title, title_justify="left")
    for col in ("#", "layer", "op", *columns, "kept in float"):
        table.add_column(col, justify="right" if col in ("#", *columns) else "left")
    for i, layer in enumerate(ranking["layers"][:rows], 1):
        figures = [show(layer[key]) for show, key in zip(formats, keys)]
        table.add_row(str(i), Text(layer["node"]), layer["op_type"], *figures, "yes" if layer["node"] in kept else "")
    return table


def budget_table(result: ExportResult) -> Table | None:
    """Each INT8 artifact under ``--max-accuracy-drop``: its drop before and after, the layers put
    back in float, and what they cost in latency; None without a budget."""
    info = result.manifest.get("stages", {}).get("int8", {}).get("info", {})
    budget = info.get("accuracy_budget")
    if not budget:
        return None
    data = budget.get("data") or {}
    metric = "top-1" if data.get("metric") == "top1" else "mAP@[.5:.95]"
    table = Table(
        title=f"INT8 accuracy budget: at most {budget['max_drop']:g} {metric} points below FP32 on "
        f"{data.get('images', '?')} images of {data.get('path', '?')}",
        title_justify="left",
    )
    for col in ("artifact", "FP32", "drop before", "drop after", "held", "layers in float", "latency ms"):
        table.add_column(col, justify="left" if col in ("artifact", "layers in float") else "right")
    for name, o in budget["artifacts"].items():
        latency = o.get("latency_ms")
        cost = "—" if not latency else f"{latency['before']:.3f} → {latency['after']:.3f} ({latency['ratio']:.2f}×)"
        reverted = o["reverted"]
        shown = ", ".join(reverted[:3]) + (f" (+{len(reverted) - 3})" if len(reverted) > 3 else "")
        table.add_row(
            name,
            f"{o['fp32']:.2f}",
            f"{o['drop_before']:+.2f}",
            f"{o['drop_after']:+.2f}",
            "yes" if o["reached"] else "NO: best found",
            Text(f"{len(reverted)}: {shown}" if reverted else "0"),
            cost,
        )
    return table
