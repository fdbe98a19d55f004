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


def run_labels(paths: Sequence[str | Path], docs: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """Short unique names for the runs: the run folder (or artifact) each benchmarked; where two runs
    benchmarked the same one, as many trailing folders of their results files as tell them apart."""
    if docs is not None:
        targets = [Path(str((d.get("target") or {}).get("path") or "")).name for d in docs]
        if all(targets) and len(set(targets)) == len(targets):
            return targets
    trails = []
    for p in (Path(x).expanduser().absolute() for x in paths):
        parts = list(p.parent.parts[1:]) if p.stem == "results" else [*p.parent.parts[1:], p.stem]
        trails.append(parts or [p.stem])
    depth = [1] * len(trails)
    while True:
        labels = ["/".join(t[-d:]) for t, d in zip(trails, depth)]
        clashing = [i for i, label in enumerate(labels) if labels.count(label) > 1 and depth[i] < len(trails[i])]
        if not clashing:
            break
        for i in clashing:
            depth[i] += 1
    unique: list[str] = []
    for base in labels:
        label, n = base, 2
        while label in unique:
            label, n = f"{base}-{n}", n + 1
        unique.append(label)
    return unique


def _setting_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """What a reader checks first when two runs disagree: how each was timed, on what, with what."""
    s = doc.get("settings") or {}
    m = doc.get("machine") or {}
    loop = f"{s['iterations']} calls" if s.get("iterations") else (f"{s['duration']} s" if s.get("duration") else None)
    return {
        "scenario": s.get("scenario"),
        "batch": ", ".join(map(str, s["batches"])) if s.get("batches") else "scenario's",
        "threads": s.get("threads") or "backend default",
        "precision hint": s.get("precision_hint") or "backend default",
        "shape": s.get("shape"),
        "timed calls": loop,
        "warmup": s.get("warmup"),
        "isolation": s.get("isolation"),
        "CPU": m.get("cpu"),
        "usable cores": (m.get("cores") or {}).get("usable"),
        "CPU flags": ", ".join(m.get("flags") or []) or None,
        "memory GiB": m.get("memory_gib"),
        "OpenVINO CPU default precision": m.get("openvino_default_precision"),
        "OS": m.get("os"),
        "edgecv": doc.get("edgecv_version"),
        **{tool: version for tool, version in (doc.get("versions") or {}).items() if tool != "edgecv"},
    }


def run_differences(docs: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every setting, machine fact and tool version whose value is not the same in all runs."""
    fields = [_setting_fields(doc) for doc in docs]
    keys = list(dict.fromkeys(k for f in fields for k in f))
    return {k: [f.get(k) for f in fields] for k in keys if len({repr(f.get(k)) for f in fields}) > 1}


def headline(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """``throughput`` when every run is the offline or throughput scenario (their headline), else
    ``latency``."""
    scenarios = {(doc.get("settings") or {}).get("scenario") for _, doc in runs}
    return "throughput" if scenarios <= {"offline", "throughput"} else "latency"


def compare_runs(runs: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Rows keyed by (artifact, backend, scenario, batch) with each run's median, p90 and throughput
    and the ratio of each run's median to the first run's (below 1: faster than the first)."""
    labels = [label for label, _ in runs]
    index: dict[tuple, dict[str, Any]] = {}
    for j, (_, doc) in enumerate(runs):
        for r in doc["results"]:
            key = (r["artifact"], r["backend"], r["scenario"], r["batch"])
            row = index.setdefault(
                key,
                {
                    "artifact": r["artifact"],
                    "backend": r["backend"],
                    "scenario": r["scenario"],
                    "batch": r["batch"],
                    "medians": [None] * len(runs),
                    "p90s": [None] * len(runs),
                    "throughputs": [None] * len(runs),
                    "precisions": [None] * len(runs),
                },
            )
            row["medians"][j] = r["latency"]["median_ms"]
            row["p90s"][j] = r["latency"]["p90_ms"]
            row["throughputs"][j] = (r.get("concurrency") or {}).get("items_per_s") or r.get("throughput_ips")
            row["precisions"][j] = r.get("precision")
    rows = list(index.values())
    for row in rows:
        first = row["medians"][0]
        row["ratios"] = [m / first if m is not None and first else None for m in row["medians"]]
        top = row["throughputs"][0]
        row["throughput_ratios"] = [t / top if t is not None and top else None for t in row["throughputs"]]
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
            {
                "label": label,
                "created": doc.get("created"),
                "target": (doc.get("target") or {}).get("path"),
                "machine": machine_line(doc),
                "settings": doc.get("settings"),
            }
            for label, doc in runs
        ],
        "versions_differing": differing,
        "differences": run_differences([doc for _, doc in runs]),
        "headline": headline(runs),
        "rows": rows,
    }


def _columns(labels: list[str], by_throughput: bool = False) -> list[tuple[str, str]]:
    cols = [("artifact", "artifact"), ("backend", "backend"), ("batch", "batch")]
    figure = "items/s" if by_throughput else "median ms"
    cols += [(f"median{j}", f"{figure} · {label}") for j, label in enumerate(labels)]
    cols += [(f"ratio{j}", f"ratio · {label}") for j, label in enumerate(labels) if j > 0]
    return cols


def _cells(row: dict[str, Any], by_throughput: bool = False) -> dict[str, str]:
    cells = {"artifact": str(row["artifact"]), "backend": str(row["backend"]), "batch": str(row["batch"])}
    values = row["throughputs"] if by_throughput else row["medians"]
    ratios = row.get("throughput_ratios", [None] * len(values)) if by_throughput else row["ratios"]
    for j, (value, ratio) in enumerate(zip(values, ratios)):
        cells[f"median{j}"] = fmt(value, ".1f" if by_throughput else ".3f")
        cells[f"ratio{j}"] = DASH if ratio is None else f"{ratio:.2f}×"
    return cells


def comparison_rows(comparison: dict[str, Any]) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    labels = [r["label"] for r in comparison["runs"]]
    by_throughput = comparison.get("headline") == "throughput"
    return _columns(labels, by_throughput), [_cells(row, by_throughput) for row in comparison["rows"]]


RATIO_NOTE = "ratio: this run's median divided by the first run's (below 1: faster than the first)."
THROUGHPUT_NOTE = (
    "offline/throughput scenario: throughput is the headline; ratio: this run's items/s divided by the first run's "
    "(above 1: more throughput than the first)."
)


def ratio_note(comparison: dict[str, Any]) -> str:
    return THROUGHPUT_NOTE if comparison.get("headline") == "throughput" else RATIO_NOTE


def difference_rows(comparison: dict[str, Any]) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """One row per setting, machine fact or version that differs between the runs (empty if none)."""
    labels = [r["label"] for r in comparison["runs"]]
    columns = [("what", "differs")] + [(f"run{j}", label) for j, label in enumerate(labels)]
    rows = [
        {"what": what, **{f"run{j}": DASH if v is None else str(v) for j, v in enumerate(values)}}
        for what, values in (comparison.get("differences") or {}).items()
    ]
    return columns, rows


def render_comparison_markdown(comparison: dict[str, Any]) -> str:
    columns, rows = comparison_rows(comparison)
    numeric = {k for k, _ in columns if k.startswith(("median", "ratio")) or k == "batch"}
    lines = [f"# edgecv comparison against {md_escape(comparison['baseline'])}", ""]
    lines += [
        f"- **{md_escape(r['label'])}**: {md_escape(r['machine'])} ({md_escape(r['created'])}, {md_escape(r['target'])})"
        for r in comparison["runs"]
    ]
    diff_columns, diff_rows = difference_rows(comparison)
    lines += ["", "## What differs between the runs", ""]
    lines += [md_table(diff_columns, diff_rows) if diff_rows else "Nothing: same settings, machine and versions."]
    lines += ["", "## Results", "", md_table(columns, rows, numeric), "", ratio_note(comparison)]
    return "\n".join(lines) + "\n"


def render_comparison_html(comparison: dict[str, Any]) -> str:
    columns, rows = comparison_rows(comparison)
    numeric = {k for k, _ in columns if k.startswith(("median", "ratio")) or k == "batch"}
    labels = [r["label"] for r in comparison["runs"]]
    runs = "".join(
        f"<li><b>{esc(r['label'])}</b>: {esc(r['machine'])} ({esc(r['created'])}, {esc(r['target'])})</li>"
        for r in comparison["runs"]
    )
    diff_columns, diff_rows = difference_rows(comparison)
    diffs = (
        html_table(diff_columns, diff_rows, set())
        if diff_rows
        else "<p>Nothing: same settings, machine and versions.</p>"
    )
    body = "\n".join(
        [
            f"<h1>edgecv comparison against {esc(comparison['baseline'])}</h1>",
            f"<ul>{runs}</ul>",
            html_table(columns, rows, numeric),
            f'<p class="meta">{esc(ratio_note(comparison))}</p>',
            "<h2>What differs between the runs</h2>",
            diffs,
            figure(
                plots.comparison_bars(comparison["rows"], labels),
                "median latency per run",
                "Median latency of each artifact in each run.",
            ),
        ]
    )
    return page(f"edgecv comparison against {comparison['baseline']}", body)
