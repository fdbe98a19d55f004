"""``report.html``: one self-contained file (plots embedded as base64 PNG, CSS inline, no script).

Everything that comes from a results file is escaped, and a Content-Security-Policy forbids any
load from outside the page, so a report can be mailed or archived and opens the same anywhere.
"""

from __future__ import annotations

import base64
import html
from typing import Any, Iterable, Sequence

from . import plots
from .format import (
    accuracy_note,
    detail_columns,
    detail_row,
    machine_line,
    result_notes,
    results_columns,
    settings_line,
    versions_line,
)
from .markdown import MEMORY_NOTE, NUMERIC
from .recommend import recommendation_of
from .recommendation_text import recommendation_lines

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #1d1d1f; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.meta { color: #555; margin: .2rem 0; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .6rem; text-align: left; white-space: nowrap; }
th { background: #f4f4f6; } td.num, th.num { text-align: right; }
figure { margin: 1rem 0; } figcaption { color: #555; font-size: .9rem; }
img { max-width: 100%; height: auto; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def html_table(columns: Sequence[tuple[str, str]], rows: Iterable[dict[str, str]], numeric: set[str] = NUMERIC) -> str:
    def cls(key: str) -> str:
        return ' class="num"' if key in numeric else ""

    head = "".join(f"<th{cls(k)}>{esc(h)}</th>" for k, h in columns)
    body = "".join("<tr>" + "".join(f"<td{cls(k)}>{esc(row[k])}</td>" for k, _ in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(png: bytes | None, alt: str, caption: str) -> str:
    if png is None:
        return f'<p class="meta">{esc(alt)}: no data in this run.</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}"><figcaption>{esc(caption)}</figcaption></figure>'


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def recommendation_html(rec: dict[str, Any]) -> str:
    """One item per pick with its alternatives in a nested list, then the INT8 verdicts."""
    items: list[tuple[str, list[str]]] = []
    for line in recommendation_lines(rec):
        if line.startswith("  ") and items:
            items[-1][1].append(line.strip())
        else:
            items.append((line, []))
    body = "".join(
        f"<li>{esc(head)}" + ("<ul>" + "".join(f"<li>{esc(s)}</li>" for s in subs) + "</ul>" if subs else "") + "</li>"
        for head, subs in items
    )
    return f"<ul>{body}</ul>"


def render_html(doc: dict[str, Any]) -> str:
    target = (doc.get("target") or {}).get("path", "")
    results = doc["results"]
    parts = [
        f"<h1>edgecv benchmark: {esc(target)}</h1>",
        f'<p class="meta">{esc(doc.get("created", ""))} · edgecv {esc(doc.get("edgecv_version", ""))}</p>',
        f'<p class="meta"><b>Machine:</b> {esc(machine_line(doc))}</p>',
        f'<p class="meta"><b>Versions:</b> {esc(versions_line(doc))}</p>',
        f'<p class="meta"><b>Settings:</b> {esc(settings_line(doc))}</p>',
        html_table(*results_columns(results)),
        *([f'<p class="note">{esc(accuracy_note(doc))}</p>'] if accuracy_note(doc) else []),
        "<h2>Recommendation</h2>",
        recommendation_html(recommendation_of(doc)),
        "<h2>Latency distribution</h2>",
        figure(
            plots.latency_distribution(results),
            "latency distribution per artifact",
            "Boxes: quartiles and median; whiskers: Tukey's 1.5·IQR fences; dots beyond them: outliers "
            "(counted, not dropped); diamonds: p90.",
        ),
        "<h2>Latency against fidelity</h2>",
        figure(
            plots.latency_vs_fidelity(results),
            "latency against fidelity",
            "Top-1 agreement with the FP32 model: INT8 artifacts on held-out calibration inputs (or, "
            "marked in-sample, on the calibration inputs themselves when too few were given), the "
            "others from the export's verification against PyTorch, shown only where the benchmark ran "
            "the precision that was verified (OpenVINO verifies in f32: benchmark with --precision f32).",
        ),
        "<h2>Cold start, memory and spread</h2>",
        html_table(detail_columns(results), (detail_row(r) for r in results)),
        f'<p class="meta">{esc(MEMORY_NOTE)}</p>',
    ]
    accuracy_png = plots.latency_vs_accuracy(results)
    if accuracy_png is not None:  # only where `edgecv eval` measured accuracy
        parts[-3:-3] = [
            "<h2>Latency against accuracy</h2>",
            figure(
                accuracy_png,
                "latency against accuracy",
                "Accuracy measured by edgecv eval on the user's data; red: the Pareto front (no other artifact "
                "is both faster and more accurate).",
            ),
        ]
    skipped = doc.get("skipped") or []
    if skipped:
        items = "".join(f"<li>{esc(s['artifact'])}: {esc(s['reason'])}</li>" for s in skipped)
        parts.append(f"<h2>Skipped</h2><ul>{items}</ul>")
    notes = result_notes(results)
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    return page(f"edgecv benchmark: {target}", "\n".join(parts))
