"""Rich rendering of export progress and results (used by the CLI; the library stays quiet)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table
from rich.text import Text

from .pipeline import ExportResult, Reporter
from .stages import Stage


class RichReporter(Reporter):
    def __init__(self, console: Console):
        self.console = console
        self._status: Status | None = None

    def stage_start(self, stage: Stage) -> None:
        self._status = self.console.status(f"[bold]{escape(stage.name)}[/] {escape(stage.title)} …", spinner="dots")
        self._status.start()

    def progress(self, description: str, completed: int, total: int | None) -> None:
        if self._status is not None:
            of = f"/{total}" if total else ""
            self._status.update(Text(f"{description} {completed}{of}"))

    def stage_end(self, stage: Stage, status: str, wall_s: float, info: dict[str, Any]) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        mark = {"done": "[green]✓[/]", "reused": "[cyan]↺[/]"}.get(status, "[red]✗[/]")
        note = "reused from the earlier run" if status == "reused" else f"{wall_s:6.2f} s"
        extra = ""
        if stage.name == "simplify" and "nodes_before" in info:
            extra = f"  nodes {info['nodes_before']} → {info['nodes_after']}"
        elif stage.name == "int8" and "timings_s" in info:
            extra = "  " + int8_note(info)
        self.console.print(f" {mark} {escape(f'{stage.name:<14} {stage.title:<36} {note}{extra}')}", soft_wrap=True)

    def warn(self, message: str, category: type[Warning] = UserWarning) -> None:
        if self._status is not None:
            self._status.stop()
        # A Text, not markup: messages quote paths and package extras whose brackets rich would eat.
        self.console.print(Text.assemble(("warning:", "bold yellow"), " ", message), soft_wrap=True)
        if self._status is not None:
            self._status.start()


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def artifact_table(result: ExportResult) -> Table:
    table = Table(title=Text(f"artifacts in {result.run_dir}"), title_justify="left")
    artifacts = result.summary()["artifacts"]
    files = [str(a["path"]).rsplit(str(result.run_dir), 1)[-1].lstrip("/") for a in artifacts]
    # Names and file names are what the reader copies: never cut them; the figures' headers wrap instead.
    whole = {"artifact": [a["name"] for a in artifacts], "file": files, "for": [a["intended_for"] for a in artifacts]}
    detector = (result.manifest.get("input_spec") or {}).get("task") == "detection"
    figures = (
        ("max |Δ| vs torch", "dets matched", "", "INT8 mAP vs FP32 / kept")
        if detector
        else ("max |Δ| vs torch", "cosine", "top-1 agr.", "INT8 top-1 / SQNR")
    )
    for col in ("artifact", "file", "for", "size MB", *[c for c in figures if c]):
        keep = whole.get(col)
        table.add_column(
            col,
            justify="right" if col[0] in "smct I" else "left",
            no_wrap=keep is not None,
            min_width=max(map(len, keep), default=0) if keep else None,
        )
    for a, file in zip(artifacts, files):
        v = a["verification"] or {}
        f = a["fidelity"] or {}
        fid = "—"
        if f.get("kind") == "detection":
            fid = f"mAP {_fmt(f.get('map'), '.3f')} / {_fmt(f.get('reproduced'), '.0%')} kept"
            if f.get("collapsed"):
                fid += " COLLAPSED: try --sensitivity"
        elif f:
            fid = f"{_fmt(f.get('top1_agreement'), '.1%')} / {_fmt(f.get('sqnr_db'), '.1f')} dB"
            if f.get("in_sample"):
                fid += " (in-sample)"
        size = a["size_bytes"] / 1e6 if a["size_bytes"] else None
        if detector:
            checks = [_fmt(v.get("max_abs"), ".2e"), _fmt(v.get("matched_share"), ".1%")]
        else:
            checks = [_fmt(v.get("max_abs"), ".2e"), _fmt(v.get("cosine"), ".6f"), _fmt(v.get("top1_agreement"), ".0%")]
        table.add_row(a["name"], Text(file), a["intended_for"], _fmt(size, ".2f"), *checks, fid)
    return table


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
    if info.get("excluded"):
        parts.append(f"{len(info['excluded'])} layer(s) kept in float")
    return "; ".join(parts)


def sensitivity_table(result: ExportResult, rows: int = 10) -> Table | None:
    """The most INT8-sensitive layers (``--sensitivity``), or None when they were not ranked."""
    info = result.manifest.get("stages", {}).get("int8", {}).get("info", {})
    ranking = info.get("sensitivity")
    if not ranking:
        return None
    kept = set(info.get("excluded") or [])
    in_sample = ranking.get("in_sample", (info.get("calibration") or {}).get("holdout_in_sample"))
    inputs = "calibration inputs (in-sample: too few to hold any out)" if in_sample else "held-out inputs"
    by_map = ranking.get("metric") == "map"
    if by_map:
        title = (
            f"INT8 sensitivity: mAP against FP32 detections gained by leaving one layer in float "
            f"(TensorRT-flavour graph, all INT8: {ranking['baseline_map']:.3f} on {ranking['inputs']} {inputs})"
        )
        columns, keys, formats = ("gain mAP", "mAP"), ("gain_map", "map"), ("{:+.3f}", "{:.3f}")
    else:
        title = (
            f"INT8 sensitivity: output SQNR gained by leaving one layer in float (TensorRT-flavour graph, "
            f"all INT8: {ranking['baseline_sqnr_db']:.1f} dB on {ranking['inputs']} {inputs})"
        )
        columns, keys, formats = ("gain dB", "SQNR dB"), ("gain_db", "sqnr_db"), ("{:+.2f}", "{:.1f}")
    table = Table(title=title, title_justify="left")
    for col in ("#", "layer", "op", *columns, "kept in float"):
        table.add_column(col, justify="right" if col in ("#", *columns) else "left")
    for i, layer in enumerate(ranking["layers"][:rows], 1):
        figures = [fmt.format(layer[key]) for fmt, key in zip(formats, keys)]
        table.add_row(str(i), Text(layer["node"]), layer["op_type"], *figures, "yes" if layer["node"] in kept else "")
    return table
