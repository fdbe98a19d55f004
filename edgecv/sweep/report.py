"""``sweep.md`` and ``sweep.html`` from ``sweep.json``: the recommendation and its alternatives, the
accuracy–latency plot with the Pareto front marked and every point labelled, latency against MACs
per engine, the table of every row, and the points that failed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from edgecv.report.format import DASH, machine_line
from edgecv.report.html import esc, figure, html_table, page
from edgecv.report.markdown import md_table
from edgecv.report.plots import figure_png
from edgecv.report.sweep_compare import SWEEP_FILE
from edgecv.runfolder import write_json_atomic, write_text_atomic

from .results import accuracy_pct

COLUMNS = (
    ("mark", ""),
    ("point", "point"),
    ("backend", "engine"),
    ("threads", "threads"),
    ("p90", "p90 ms"),
    ("median", "median ms"),
    ("accuracy", "accuracy (measured)"),
    ("published", "top-1 (published)"),
    ("macs", "MMACs"),
    ("params", "params (M)"),
)
METRIC_NAMES = {"top1": "top-1", "map": "mAP"}
FAILED_COLUMNS = (("point", "point"), ("stage", "stage"), ("message", "error"))
NUMERIC = {"threads", "p90", "median", "accuracy", "published", "macs", "params"}


def _labeller(rows: list[dict[str, Any]]) -> Any:
    """Plot labels: each point's key without the part every point shares (the model, often), its
    engine and threads."""
    keys = [r["point"] for r in rows]
    common = os.path.commonprefix(keys) if len(set(keys)) > 1 else ""
    common = common[: common.rfind("-") + 1]  # whole words only

    def label(row: dict[str, Any]) -> str:
        return f"{row['point'][len(common) :]} · {row['backend']}" + (f" ·t{row['threads']}" if row["threads"] else "")

    return label


def table_cells(row: dict[str, Any], doc: dict[str, Any]) -> dict[str, str]:
    rec = doc["recommendation"]
    mark = "★" if row["id"] == rec["choice"] else ("◆" if row["id"] in doc["pareto"] else "")
    acc = row.get("accuracy")
    if acc and acc.get("value") is not None:
        metric = METRIC_NAMES.get(acc.get("metric"), acc.get("metric") or "")
        accuracy = f"{100 * acc['value']:.2f}% {metric}".strip()
    else:
        accuracy = "timing only (no weights)" if row["timing_only"] else DASH
    pub = row.get("published")
    return {
        "mark": mark,
        "point": row["point"],
        "backend": row["backend"],
        "threads": DASH if row["threads"] is None else str(row["threads"]),
        "p90": f"{row['p90_ms']:.3f}",
        "median": f"{row['median_ms']:.3f}",
        "accuracy": accuracy,
        "published": f"{pub['top1']:.1f}%" if pub else DASH,
        "macs": DASH if row["macs"] is None else f"{row['macs'] / 1e6:.1f}",
        "params": DASH if row["params"] is None else f"{row['params'] / 1e6:.2f}",
    }


def recommendation_lines(doc: dict[str, Any]) -> list[str]:
    rec = doc["recommendation"]
    by_id = {r["id"]: r for r in doc["rows"]}
    lines = [f"Constraint: {doc['constraint']}."]
    if rec["choice"] is None:
        lines.append(f"No recommendation: {rec['reason']}.")
        return lines

    def describe(rid: str) -> str:
        r = by_id[rid]
        acc = accuracy_pct(r, rec["basis"])
        acc_text = "" if acc is None else f", {acc:.2f} % {rec['basis']}"
        return f"{rid} (p90 {r['p90_ms']:.3f} ms{acc_text}; {r['run_dir']})"

    lines.append(f"Recommended: {describe(rec['choice'])}: {rec['reason']}.")
    if rec["alternatives"]:
        lines.append("Next best: " + "; ".join(describe(a) for a in rec["alternatives"]) + ".")
    if rec["basis"] == "published":
        lines.append(
            "Accuracy is the papers' published ImageNet top-1 of the authors' trained models, not measured here."
        )
    return lines


def _notes(doc: dict[str, Any]) -> list[str]:
    notes = []
    timing = sorted({r["point"] for r in doc["rows"] if r["timing_only"]})
    if timing:
        notes.append(f"{len(timing)} point(s) have no weights: latency, MACs and params only (random weights).")
    if any(r.get("published") for r in doc["rows"]):
        notes.append(
            "'published' is the paper's ImageNet top-1 of its float model (source in sweep.json), shown for FP32 "
            "points only and never mixed with measured accuracy."
        )
    if doc.get("untimed"):
        notes.append(
            f"No engine asked for has an artifact of these points' precision (ONNX Runtime has no FP16 one): "
            f"{', '.join(doc['untimed'])}."
        )
    if doc["unfinished"]:
        notes.append(f"{len(doc['unfinished'])} point(s) unfinished (interrupted): rerun the same command to finish.")
    return notes


def failed_cells(doc: dict[str, Any]) -> list[dict[str, str]]:
    """The failed points, each error's first line (the full trace is in points/<key>.json)."""
    return [
        {"point": f["point"], "stage": str(f["stage"]), "message": (str(f["message"]).splitlines() or [""])[0][:300]}
        for f in doc["failed"]
    ]


def rows_by_latency(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(doc["rows"], key=lambda r: r["p90_ms"])


def render_markdown(doc: dict[str, Any]) -> str:
    out = [
        "# edgecv sweep",
        "",
        f"{machine_line(doc)}; {doc['latency']}.",
        "",
        *recommendation_lines(doc),
        "",
        "★ recommended · ◆ on the accuracy–latency Pareto front",
        "",
        md_table(COLUMNS, [table_cells(r, doc) for r in rows_by_latency(doc)], NUMERIC),
    ]
    if doc["failed"]:
        out += ["", "## Failed points", "", md_table(FAILED_COLUMNS, failed_cells(doc))]
    notes = _notes(doc)
    if notes:
        out += ["", *(f"- {n}" for n in notes)]
    return "\n".join(out) + "\n"


def accuracy_latency_plot(doc: dict[str, Any]) -> bytes | None:
    basis = doc["accuracy_basis"]
    rows = [r for r in doc["rows"] if accuracy_pct(r, basis) is not None]
    if not rows:
        return None
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    front = sorted((r for r in rows if r["id"] in doc["pareto"]), key=lambda r: r["p90_ms"])
    label = _labeller(rows)
    others = [r for r in rows if r["id"] not in doc["pareto"]]
    if others:
        ax.scatter([r["p90_ms"] for r in others], [accuracy_pct(r, basis) for r in others], s=30, color="tab:gray")
    ax.step(
        [r["p90_ms"] for r in front], [accuracy_pct(r, basis) for r in front], where="post", color="tab:red", alpha=0.5
    )
    ax.scatter(
        [r["p90_ms"] for r in front], [accuracy_pct(r, basis) for r in front], s=48, color="tab:red", label="Pareto"
    )
    for r in rows:
        star = "★ " if r["id"] == doc["recommendation"]["choice"] else ""
        ax.annotate(star + label(r), (r["p90_ms"], accuracy_pct(r, basis)), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    limit = doc["plan"].get("max_latency_ms")
    if limit is not None:
        ax.axvline(limit, color="tab:blue", linestyle="--", alpha=0.6, label=f"max latency {limit:g} ms")
    ax.set_xlabel("p90 latency (ms)")
    ax.set_ylabel(f"accuracy (%), {basis}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return figure_png(fig)


def latency_macs_plot(doc: dict[str, Any]) -> bytes | None:
    rows = [r for r in doc["rows"] if r["macs"]]
    if not rows:
        return None
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for engine in sorted({(r["backend"], r["precision"]) for r in rows}):
        sel = sorted((r for r in rows if (r["backend"], r["precision"]) == engine), key=lambda r: r["macs"])
        ax.plot([r["macs"] / 1e6 for r in sel], [r["p90_ms"] for r in sel], "o", label=f"{engine[0]} {engine[1]}")
    ax.set_xlabel("MMACs")
    ax.set_ylabel("p90 latency (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return figure_png(fig)


def render_html(doc: dict[str, Any]) -> str:
    body = ["<h1>edgecv sweep</h1>", f'<p class="meta">{esc(machine_line(doc))}; {esc(doc["latency"])}</p>']
    body += [f"<p>{esc(line)}</p>" for line in recommendation_lines(doc)]
    basis = doc["accuracy_basis"]
    body.append(
        figure(
            accuracy_latency_plot(doc),
            "accuracy against latency",
            f"Accuracy ({basis}) against p90 latency; red: Pareto front, ★ recommended.",
        )
    )
    body.append(figure(latency_macs_plot(doc), "latency against MACs", "p90 latency against MACs, per engine."))
    body.append("<p>★ recommended · ◆ on the Pareto front</p>")
    body.append(html_table(COLUMNS, [table_cells(r, doc) for r in rows_by_latency(doc)], NUMERIC))
    if doc["failed"]:
        body.append("<h2>Failed points</h2>")
        body.append(html_table(FAILED_COLUMNS, failed_cells(doc), set()))
    body += [f"<p>{esc(n)}</p>" for n in _notes(doc)]
    return page("edgecv sweep", "\n".join(body))


def write_reports(doc: dict[str, Any], out: str | Path) -> dict[str, Path]:
    out = Path(out)
    paths = {"json": out / SWEEP_FILE, "md": out / "sweep.md", "html": out / "sweep.html"}
    write_json_atomic(paths["json"], doc)
    write_text_atomic(paths["md"], render_markdown(doc))
    write_text_atomic(paths["html"], render_html(doc))
    return paths
