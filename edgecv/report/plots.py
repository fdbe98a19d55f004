"""The report's plots, drawn with matplotlib's object API (no pyplot state) into PNG bytes."""

from __future__ import annotations

import io
from typing import Any

import matplotlib
from matplotlib import ticker
from matplotlib.figure import Figure

DPI = 110
# matplotlib 3.10 replaced boxplot's ``vert`` with ``orientation`` (and deprecated ``vert``).
_HORIZONTAL = (
    {"orientation": "horizontal"}
    if tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _label(result: dict[str, Any], batches: set[int]) -> str:
    return f"{result['artifact']} · b{result['batch']}" if len(batches) > 1 else str(result["artifact"])


def latency_distribution(results: list[dict[str, Any]]) -> bytes | None:
    """One box per artifact (and batch): whiskers at Tukey's 1.5·IQR fences, the points beyond them
    are the outliers the tables count; a diamond marks p90."""
    with_samples = [r for r in results if r.get("samples_ms")]
    if not with_samples:
        return None
    batches = {r["batch"] for r in with_samples}
    labels = [_label(r, batches) for r in with_samples]
    fig = Figure(figsize=(8, 1.0 + 0.45 * len(with_samples)))
    ax = fig.add_subplot()
    ax.boxplot(
        [r["samples_ms"] for r in with_samples], whis=1.5, widths=0.6, **_HORIZONTAL,
        flierprops={"marker": ".", "markersize": 3, "alpha": 0.5},
    )
    ax.scatter([r["latency"]["p90_ms"] for r in with_samples], range(1, len(with_samples) + 1),
               marker="D", s=18, color="tab:red", zorder=3, label="p90")
    ax.set_yticks(range(1, len(with_samples) + 1), labels)
    ax.invert_yaxis()
    lows = [min(r["samples_ms"]) for r in with_samples]
    highs = [max(r["samples_ms"]) for r in with_samples]
    if min(lows) > 0 and max(highs) / min(lows) > 20:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("latency per call (ms)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return _png(fig)


def _fidelity_point(result: dict[str, Any]) -> tuple[float, str] | None:
    """Top-1 agreement with the FP32 model: INT8 fidelity on held-out inputs, else the export's
    verification against PyTorch."""
    fidelity = result.get("fidelity") or {}
    if fidelity.get("top1_agreement") is not None:
        return float(fidelity["top1_agreement"]), "INT8 fidelity (held-out inputs)"
    verification = result.get("verification") or {}
    verified_as = verification.get("ran_precision")
    # A figure verified in fp32 says nothing about a bf16 run of the same file.
    if verification.get("top1_agreement") is not None and verified_as in (None, result.get("precision")):
        return float(verification["top1_agreement"]), "verification vs PyTorch"
    return None


def latency_vs_fidelity(results: list[dict[str, Any]]) -> bytes | None:
    points = [(r, p) for r in results if (p := _fidelity_point(r)) is not None]
    if not points:
        return None
    batches = {r["batch"] for r, _ in points}
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    for kind, marker in (("INT8 fidelity (held-out inputs)", "o"), ("verification vs PyTorch", "s")):
        chosen = [(r, p) for r, p in points if p[1] == kind]
        if chosen:
            ax.scatter([r["latency"]["median_ms"] for r, _ in chosen], [100 * p[0] for _, p in chosen],
                       marker=marker, s=40, label=kind)
    for r, p in points:
        ax.annotate(_label(r, batches), (r["latency"]["median_ms"], 100 * p[0]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    lowest = min(100 * p[0] for _, p in points)
    ax.set_ylim(max(0.0, lowest - max(2.0, 0.1 * (100 - lowest))), 100.8)
    ax.set_xlabel("median latency (ms)")
    ax.set_ylabel("top-1 agreement with FP32 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def comparison_bars(rows: list[dict[str, Any]], runs: list[str]) -> bytes | None:
    """Median latency of each artifact in each run, side by side."""
    if not rows:
        return None
    fig = Figure(figsize=(8, 1.2 + 0.35 * len(rows) * max(1, len(runs)) / 2))
    ax = fig.add_subplot()
    height = 0.8 / len(runs)
    for j, run in enumerate(runs):
        values = [row["medians"][j] if row["medians"][j] is not None else 0.0 for row in rows]
        ax.barh([i + j * height for i in range(len(rows))], values, height=height, label=run)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], [row["label"] for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel("median latency (ms)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)
