"""Merge several ``results.json`` and compare them against the first: the same artifacts on two
machines, two library versions, two thread counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from . import plots
from .format import DASH, fmt, machine_line
from .html import esc, figure, html_table, page
from .markdown import md_escape, md_table
from .schema import COMPARISON_SCHEMA


def run_labels(paths: Sequence[str | Path]) -> list[str]:
    """Short unique names for the runs: the file stem, or its folder for a plain ``results.json``."""
    labels: list[str] = []
    for p in map(Path, paths):
        base = p.parent.name if p.stem == "results" and p.parent.name else p.stem
        label, n = base, 2
        while label in labels:
            label, n = f"{base}-{n}", n + 1
        labels.append(label)
    return labels


def compare_runs(runs: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Rows keyed by (artifact, backend, scenario, batch) with each run's median, p90 and throughput
    and the ratio of each run's median to the first run's (below 1: faster than the first)."""
    labels = [label for label, _ in runs]
    index: dict[tuple, dict[str, Any]] = {}
    for j, (_, doc) in enumerate(runs):
        for r in doc["results"]:
            key = (r["artifact"], r["backend"], r["scenario"], r["batch"])
            row = index.setdefault(key, {
                "artifact": r["artifact"], "backend": r["backend"], "scenario": r["scenario"], "batch": r["batch"],
                "medians": [None] * len(runs), "p90s": [None] * len(runs), "throughputs": [None] * len(runs),
                "precisions": [None] * len(runs),
            })
            row["medians"][j] = r["latency"]["median_ms"]
            row["p90s"][j] = r["latency"]["p90_ms"]
            row["throughputs"][j] = r.get("throughput_ips")
            row["precisions"][j] = r.get("precision")
    rows = list(index.values())
    for row in rows:
        first = row["medians"][0]
        row["ratios"] = [m / first if m is not None and first else None for m in row["medians"]]
        row["label"] = f"{row['artifact']} · b{row['batch']}"
    tools = sorted({k for _, doc in runs for k in (doc.get("versions") or {})})
    differing = {
        k: [(doc.get("versions") or {}).get(k) for _, doc in runs]
        for k in tools
        if len({(doc.get("versions") or {}).get(k) for _, doc in runs}) > 1
    }
    return {
        "schema": COMPARISON_SCHEMA,
        "baseline": labels[0],
        "runs": [
            {"label": label, "created": doc.get("created"), "target": (doc.get("target") or {}).get("path"),
             "machine": machine_line(doc), "settings": doc.get("settings")}
            for label, doc in runs
        ],
        "versions_differing": differing,
        "rows": rows,
    }


def _columns(labels: list[str]) -> list[tuple[str, str]]:
    cols = [("artifact", "artifact"), ("backend", "backend"), ("batch", "batch")]
    cols += [(f"median{j}", f"median ms · {label}") for j, label in enumerate(labels)]
    cols += [(f"ratio{j}", f"ratio · {label}") for j, label in enumerate(labels) if j > 0]
    return cols


def _cells(row: dict[str, Any]) -> dict[str, str]:
    cells = {"artifact": str(row["artifact"]), "backend": str(row["backend"]), "batch": str(row["batch"])}
    for j, (median, ratio) in enumerate(zip(row["medians"], row["ratios"])):
        cells[f"median{j}"] = fmt(median, ".3f")
        cells[f"ratio{j}"] = DASH if ratio is None else f"{ratio:.2f}×"
    return cells


def comparison_rows(comparison: dict[str, Any]) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    labels = [r["label"] for r in comparison["runs"]]
    return _columns(labels), [_cells(row) for row in comparison["rows"]]


RATIO_NOTE = "ratio: this run's median divided by the first run's (below 1: faster than the first)."


def render_comparison_markdown(comparison: dict[str, Any]) -> str:
    columns, rows = comparison_rows(comparison)
    numeric = {k for k, _ in columns if k.startswith(("median", "ratio")) or k == "batch"}
    lines = [f"# edgecv comparison against {md_escape(comparison['baseline'])}", ""]
    lines += [f"- **{md_escape(r['label'])}**: {md_escape(r['machine'])} ({md_escape(r['created'])}, {md_escape(r['target'])})"
              for r in comparison["runs"]]
    for tool, versions in comparison["versions_differing"].items():
        lines.append(f"- {md_escape(tool)} differs: " + ", ".join(md_escape(v or "absent") for v in versions))
    lines += ["", md_table(columns, rows, numeric), "", RATIO_NOTE]
    return "\n".join(lines) + "\n"


def render_comparison_html(comparison: dict[str, Any]) -> str:
    columns, rows = comparison_rows(comparison)
    numeric = {k for k, _ in columns if k.startswith(("median", "ratio")) or k == "batch"}
    labels = [r["label"] for r in comparison["runs"]]
    runs = "".join(
        f"<li><b>{esc(r['label'])}</b>: {esc(r['machine'])} ({esc(r['created'])}, {esc(r['target'])})</li>"
        for r in comparison["runs"]
    )
    diffs = "".join(
        f"<li>{esc(tool)} differs: {esc(', '.join(v or 'absent' for v in versions))}</li>"
        for tool, versions in comparison["versions_differing"].items()
    )
    body = "\n".join([
        f"<h1>edgecv comparison against {esc(comparison['baseline'])}</h1>",
        f"<ul>{runs}{diffs}</ul>",
        html_table(columns, rows, numeric),
        f'<p class="meta">{esc(RATIO_NOTE)}</p>',
        figure(plots.comparison_bars(comparison["rows"], labels), "median latency per run", "Median latency of each artifact in each run."),
    ])
    return page(f"edgecv comparison against {comparison['baseline']}", body)
