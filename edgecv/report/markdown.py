"""``report.md``: the results table, the recommendation, then cold start, memory and spread, then what was
skipped."""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence

from .format import (
    accuracy_note,
    detail_columns,
    detail_row,
    machine_line,
    pareto_line,
    result_notes,
    results_columns,
    settings_line,
    versions_line,
)
from .recommend import recommendation_of
from .recommendation_text import recommendation_lines


def md_escape(text: Any) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, and HTML, which Markdown renderers
    pass through, turned into entities."""
    text = html.escape(str(text), quote=False)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(
    columns: Sequence[tuple[str, str]], rows: Iterable[dict[str, str]], numeric: set[str] = frozenset()
) -> str:
    header = "| " + " | ".join(md_escape(h) for _, h in columns) + " |"
    rule = "| " + " | ".join("---:" if k in numeric else "---" for k, _ in columns) + " |"
    body = ["| " + " | ".join(md_escape(row[k]) for k, _ in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body])


NUMERIC = {
    "batch",
    "size_mb",
    "median_ms",
    "p90_ms",
    "throughput",
    "speedup",
    "load_s",
    "first_ms",
    "peak_rss",
    "rss_growth",
    "std_ms",
    "outliers",
    "calls",
}

MEMORY_NOTE = (
    "Peak RSS is the resident-memory peak of a fresh process that loaded and ran only that artifact "
    "(interpreter and libraries included); RSS growth is what loading and running it added to that "
    "process. Percentiles: nearest rank; outliers: beyond Tukey's 1.5·IQR fences, counted and kept."
)


def recommendation_markdown(rec: dict[str, Any]) -> list[str]:
    """One bullet per pick, its alternatives nested under it, then the INT8 verdicts."""
    return [
        ("  - " + md_escape(line.strip())) if line.startswith("  ") else f"- {md_escape(line)}"
        for line in recommendation_lines(rec)
    ]


def render_markdown(doc: dict[str, Any]) -> str:
    target = doc.get("target") or {}
    results = doc["results"]
    headline = "p90 latency" if (doc.get("settings") or {}).get("scenario") != "offline" else "throughput"
    lines = [
        f"# edgecv benchmark: {md_escape(target.get('path', ''))}",
        "",
        f"{md_escape(doc.get('created', ''))} · edgecv {md_escape(doc.get('edgecv_version', ''))} · headline: {headline}",
        "",
        f"- **Machine:** {md_escape(machine_line(doc))}",
        f"- **Versions:** {md_escape(versions_line(doc))}",
        f"- **Settings:** {md_escape(settings_line(doc))}",
        "",
        md_table(*results_columns(results), NUMERIC),
        "",
        "## Cold start, memory and spread",
        "",
        md_table(detail_columns(results), (detail_row(r) for r in results), NUMERIC),
        "",
        MEMORY_NOTE,
    ]
    note = accuracy_note(doc)
    if note is not None:
        lines[
            lines.index("## Cold start, memory and spread") - 1 : lines.index("## Cold start, memory and spread") - 1
        ] = ["", md_escape(note)]
    front = pareto_line(results)
    if front is not None:  # only where `edgecv eval` measured accuracy
        lines[
            lines.index("## Cold start, memory and spread") - 1 : lines.index("## Cold start, memory and spread") - 1
        ] = ["", md_escape(front)]
    at = lines.index("## Cold start, memory and spread")
    lines[at:at] = ["## Recommendation", "", *(recommendation_markdown(recommendation_of(doc))), ""]
    skipped = doc.get("skipped") or []
    if skipped:
        lines += ["", "## Skipped", ""] + [f"- {md_escape(s['artifact'])}: {md_escape(s['reason'])}" for s in skipped]
    notes = result_notes(results)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {md_escape(n)}" for n in notes]
    return "\n".join(lines) + "\n"
