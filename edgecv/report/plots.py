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
        [r["samples_ms"] for r in with_samples],
        whis=1.5,
        widths=0.6,
        **_HORIZONTAL,
        flierprops={"marker": ".", "markersize": 3, "alpha": 0.5},
    )
    ax.scatter(
        [r["latency"]["p90_ms"] for r in with_samples],
        range(1, len(with_samples) + 1),
        marker="D",
        s=18,
        color="tab:red",
        zorder=3,
        label="p90",
    )
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


INT8_HELD_OUT = "INT8 fidelity (held-out inputs)"
INT8_IN_SAMPLE = "INT8 fidelity (in-sample: calibration inputs)"
VERIFICATION = "verification vs PyTorch"


def _first(d: dict[str, Any], *keys: str) -> Any:
    return next((d[k] for k in keys if d.get(k) is not None), None)


def _fidelity_point(result: dict[str, Any]) -> tuple[float, str] | None:
    """Top-1 agreement with the FP32 model: INT8 fidelity on held-out inputs, else the export's
    verification against PyTorch."""
    fidelity = result.get("fidelity") or {}
    # Detectors agree by the share of FP32 detections reproduced (INT8) or matched (verification).
    agreement = _first(fidelity, "top1_agreement", "reproduced")
    if agreement is not None:
        return float(agreement), INT8_IN_SAMPLE if fidelity.get("in_sample") else INT8_HELD_OUT
    verification = result.get("verification") or {}
    verified_as = verification.get("ran_precision")
    agreement = _first(verification, "top1_agreement", "matched_share")
    # A figure verified in fp32 says nothing about a bf16 run of the same file.
    if agreement is not None and verified_as in (None, result.get("precision")):
        return float(agreement), VERIFICATION
    return None


def latency_vs_fidelity(results: list[dict[str, Any]]) -> bytes | None:
    fig = fidelity_figure(results)
    return None if fig is None else _png(fig)


def fidelity_figure(results: list[dict[str, Any]]) -> Figure | None:
    points = [(r, p) for r in results if (p := _fidelity_point(r)) is not None]
    if not points:
        return None
    batches = {r["batch"] for r, _ in points}
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    for kind, marker in ((INT8_HELD_OUT, "o"), (INT8_IN_SAMPLE, "^"), (VERIFICATION, "s")):
        chosen = [(r, p) for r, p in points if p[1] == kind]
        if chosen:
            ax.scatter(
                [r["latency"]["median_ms"] for r, _ in chosen],
                [100 * p[0] for _, p in chosen],
                marker=marker,
                s=40,
                label=kind,
            )
    lowest = min(100 * p[0] for _, p in points)
    bottom = max(0.0, lowest - max(2.0, 0.1 * (100 - lowest)))
    ax.set_ylim(bottom, 100.8)
    xs = [r["latency"]["median_ms"] for r, _ in points]
    left, span = min(xs), (max(xs) - min(xs)) or 1.0
    placed: list[tuple[float, float]] = []
    for r, p in sorted(points, key=lambda rp: (rp[0]["latency"]["median_ms"], -rp[1][0])):
        x, y = r["latency"]["median_ms"], 100 * p[0]
        # Labels of points in the right part of the plot go to their left, so none runs past the frame;
        # labels of points that nearly coincide are stacked rather than printed over each other.
        on_right = x > left + 0.6 * span
        near = sum(abs(px - x) < 0.12 * span and abs(py - y) < 0.04 * (100.8 - bottom) for px, py in placed)
        placed.append((x, y))
        ax.annotate(
            _label(r, batches),
            (x, y),
            fontsize=7,
            xytext=(-4 if on_right else 4, 4 - 9 * near),
            textcoords="offset points",
            ha="right" if on_right else "left",
        )
    ax.set_xlabel("median latency (ms)")
    ax.set_ylabel("agreement with FP32 (%): top-1, or detections kept")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def comparison_bars(rows: list[dict[str, Any]], runs: list[str], by_throughput: bool = False) -> bytes | None:
    """The comparison's headline figure (p90 latency, or items/s) of each artifact in each run, side by side."""
    if not rows:
        return None
    fig = Figure(figsize=(8, 1.2 + 0.35 * len(rows) * max(1, len(runs)) / 2))
    ax = fig.add_subplot()
    height = 0.8 / len(runs)
    for j, run in enumerate(runs):
        values = [row["values"][j] if row["values"][j] is not None else 0.0 for row in rows]
        ax.barh([i + j * height for i in range(len(rows))], values, height=height, label=run)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], [row["label"] for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel("items/s" if by_throughput else "p90 latency (ms)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def latency_vs_accuracy(results: list[dict[str, Any]]) -> bytes | None:
    """Median latency against the accuracy ``edgecv eval`` measured; the Pareto front is marked."""
    from .format import pareto_front

    rows = [r for r in results if (r.get("accuracy") or {}).get("value") is not None]
    if not rows:
        return None
    metric = {"top1": "top-1 accuracy (%)", "map": "mAP@[.5:.95] (%)"}.get(
        rows[0]["accuracy"].get("metric"), "accuracy (%)"
    )
    batches = {r["batch"] for r in rows}
    points = [(r["latency"]["median_ms"], 100 * r["accuracy"]["value"]) for r in rows]
    front = pareto_front(points)
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    others = [i for i in range(len(rows)) if i not in front]
    if others:
        ax.scatter(
            [points[i][0] for i in others], [points[i][1] for i in others], s=36, color="tab:gray", label="dominated"
        )
    ax.step([points[i][0] for i in front], [points[i][1] for i in front], where="post", color="tab:red", alpha=0.5)
    ax.scatter(
        [points[i][0] for i in front], [points[i][1] for i in front], s=48, color="tab:red", label="Pareto front"
    )
    for r, (x, y) in zip(rows, points):
        ax.annotate(_label(r, batches), (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("median latency (ms)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def figure_png(fig: Figure) -> bytes:
    """A figure drawn elsewhere (the sweep report's) as the PNG bytes every report embeds."""
    return _png(fig)
