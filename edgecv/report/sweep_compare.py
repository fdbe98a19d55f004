"""Two or more sweeps side by side (``edgecv report SWEEP SWEEP``): this machine against a board.
Rows line up by point, engine and threads; each latency is shown with its ratio to the first
sweep's, and the recommendation each sweep made under its own constraint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from edgecv.errors import ArtifactError

from .format import DASH, machine_line
from .markdown import md_table

SWEEP_SCHEMA = "edgecv.sweep/1"
SWEEP_FILE = "sweep.json"
SWEEP_COMPARISON_SCHEMA = "edgecv.sweep-comparison/1"


def sweep_path(path: str | Path) -> Path | None:
    """The ``sweep.json`` that ``path`` is or holds; None when it is not a sweep's."""
    p = Path(path).expanduser()
    candidate = p / SWEEP_FILE if p.is_dir() else p
    if candidate.name != SWEEP_FILE or not candidate.is_file():
        return None
    return candidate


def read_sweep(path: str | Path) -> dict[str, Any]:
    p = sweep_path(path)
    if p is None:
        raise ArtifactError(f"{path}: no {SWEEP_FILE} there (the folder of `edgecv sweep --out`)")
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{p} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SWEEP_SCHEMA:
        raise ArtifactError(f"{p} is not a sweep.json of schema {SWEEP_SCHEMA}")
    return doc


def _label(path: str | Path, doc: dict[str, Any], taken: list[str]) -> str:
    p = sweep_path(path)
    base = p.parent.name if p is not None else str(path)
    label, n = base, 2
    while label in taken:
        label, n = f"{base}-{n}", n + 1
    return label


def compare_sweeps(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The rows of every sweep lined up, the first sweep the reference of each ratio."""
    docs = [read_sweep(p) for p in paths]
    labels: list[str] = []
    for p, d in zip(paths, docs):
        labels.append(_label(p, d, labels))
    table: dict[tuple, dict[str, Any]] = {}
    for j, doc in enumerate(docs):
        for r in doc["rows"]:
            key = (r["point"], r["backend"], r["threads"])
            row = table.setdefault(
                key,
                {"point": r["point"], "backend": r["backend"], "threads": r["threads"], "p90_ms": [None] * len(docs)},
            )
            row["p90_ms"][j] = r["p90_ms"]
    rows = list(table.values())
    for row in rows:
        ref = row["p90_ms"][0]
        row["ratio"] = [None if (v is None or not ref) else v / ref for v in row["p90_ms"]]
    rows.sort(key=lambda r: (r["p90_ms"][0] is None, r["p90_ms"][0] or 0.0))
    return {
        "schema": SWEEP_COMPARISON_SCHEMA,
        "sweeps": [
            {
                "label": label,
                "path": str(p),
                "machine": machine_line(d),
                "constraint": d.get("constraint"),
                "recommendation": d.get("recommendation"),
            }
            for label, p, d in zip(labels, paths, docs)
        ],
        "rows": rows,
    }


def sweep_comparison_rows(comparison: dict[str, Any]) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """(columns, cells) of the comparison table: a p90 column per sweep, a ratio for each after the first."""
    labels = [s["label"] for s in comparison["sweeps"]]
    columns = [("point", "point"), ("backend", "engine"), ("threads", "threads")]
    for j, label in enumerate(labels):
        columns.append((f"p90_{j}", f"{label} p90 ms"))
        if j:
            columns.append((f"ratio_{j}", f"{label} / {labels[0]}"))
    cells = []
    for r in comparison["rows"]:
        c = {
            "point": r["point"],
            "backend": r["backend"],
            "threads": DASH if r["threads"] is None else str(r["threads"]),
        }
        for j in range(len(labels)):
            v, q = r["p90_ms"][j], r["ratio"][j]
            c[f"p90_{j}"] = DASH if v is None else f"{v:.3f}"
            c[f"ratio_{j}"] = DASH if q is None else f"{q:.2f}×"
        cells.append(c)
    return columns, cells


def render_sweep_comparison_markdown(comparison: dict[str, Any]) -> str:
    out = ["# edgecv sweep comparison", ""]
    for s in comparison["sweeps"]:
        rec = s.get("recommendation") or {}
        out.append(f"- {s['label']}: {s['machine']}; constraint {s['constraint']}; recommended {rec.get('choice')}")
    columns, cells = sweep_comparison_rows(comparison)
    numeric = {k for k, _ in columns if k.startswith(("p90_", "ratio_"))} | {"threads"}
    return "\n".join([*out, "", md_table(columns, cells, numeric)]) + "\n"
