"""Benchmark reports: ``results.json`` (schema :data:`RESULTS_SCHEMA`), ``report.md`` and a
self-contained ``report.html``; and the comparison of several runs (``edgecv report``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from edgecv.errors import OutputPathError
from edgecv.runfolder import RESULTS_FILE

from .schema import COMPARISON_SCHEMA, RESULTS_SCHEMA, read_results, validate_results

__all__ = [
    "COMPARISON_SCHEMA",
    "RESULTS_SCHEMA",
    "compare_files",
    "read_results",
    "validate_results",
    "write_comparison",
    "write_sweep_comparison",
    "write_report",
]


def _output_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"report path {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create report folder {out}: {exc.strerror or exc}") from None
    return out


def _write(files: dict[str, str], out_dir: str | Path) -> dict[str, Path]:
    from edgecv.runfolder import write_text_atomic

    out = _output_dir(out_dir)
    written = {}
    for name, text in files.items():
        try:
            write_text_atomic(out / name, text)
        except OSError as exc:
            raise OutputPathError(f"cannot write {out / name}: {exc.strerror or exc}") from None
        written[name] = out / name
    return written


def write_report(doc: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``report.md`` and ``report.html`` for one benchmark run."""
    from .html import render_html
    from .markdown import render_markdown

    validate_results(doc)
    return _write(
        {
            RESULTS_FILE: json.dumps(doc, indent=1, default=str) + "\n",
            "report.md": render_markdown(doc),
            "report.html": render_html(doc),
        },
        out_dir,
    )


def compare_files(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Read several ``results.json`` and compare them against the first."""
    from .compare import compare_runs, run_labels

    docs = [read_results(p) for p in paths]
    return compare_runs(list(zip(run_labels(paths, docs), docs)))


def write_sweep_comparison(comparison: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``sweep-comparison.json`` and ``sweep-comparison.md`` (``edgecv report SWEEP SWEEP``)."""
    from .sweep_compare import render_sweep_comparison_markdown

    return _write(
        {
            "sweep-comparison.json": json.dumps(comparison, indent=1, default=str) + "\n",
            "sweep-comparison.md": render_sweep_comparison_markdown(comparison),
        },
        out_dir,
    )


def write_comparison(comparison: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``comparison.json``, ``comparison.md`` and ``comparison.html``."""
    from .compare import render_comparison_html, render_comparison_markdown

    return _write(
        {
            "comparison.json": json.dumps(comparison, indent=1, default=str) + "\n",
            "comparison.md": render_comparison_markdown(comparison),
            "comparison.html": render_comparison_html(comparison),
        },
        out_dir,
    )
