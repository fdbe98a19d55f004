"""`edgecv eval`: accuracy of artifacts on the user's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.text import Text

from edgecv.cli.common import (
    PlainUsage,
    app,
    console,
    emit_json,
    guarded,
    out_console,
    parse_flag,
    print_notes,
    quiet_library_warnings,
    split_list,
)


def _eval_table(doc: dict[str, Any]) -> Any:
    from edgecv.cli.tables import FittedTable
    from edgecv.report.format import delta_points, metric_percent, precision_label

    detection = doc["task"] == "detection"
    data = doc["data"]
    metrics = (
        (("map", "mAP"), ("map50", "mAP@.5"), ("map75", "mAP@.75"), ("ar100", "AR@100"))
        if detection
        else (("top1", "top-1"), ("top5", "top-5"))
    )
    columns = [
        ("artifact", "artifact"),
        ("backend", "backend"),
        ("precision", "precision"),
        *metrics,
        ("delta", "Δ vs FP32"),
        ("ms", "ms / call"),
    ]
    if detection:
        columns.append(("conf", "conf"))
    rows = []
    for r in doc["results"]:
        acc, m = r["accuracy"], r["metrics"]
        row = {
            "artifact": r["artifact"],
            "backend": r["backend"],
            "precision": precision_label(r),
            **{k: metric_percent(m.get(k)) for k, _ in metrics},
            "delta": delta_points(acc.get("delta")) + (f" (vs {r['reference']})" if r.get("reference") else ""),
            "ms": "—" if r.get("median_ms") is None else f"{r['median_ms']:.2f}",
            "conf": "—" if doc.get("conf_thres") is None else f"{doc['conf_thres']:g}",
        }
        rows.append(row)
    return FittedTable(
        columns=columns,
        rows=rows,
        # the headline metric and its change first; the secondary metrics may move to a second table
        priority=(metrics[0][0], "delta", "precision", "backend", "ms", "conf"),
        right=frozenset(k for k, _ in columns if k not in ("artifact", "backend", "precision")),
        title=f"{doc['target']['path']} on {data['path']} ({data['images']} images)",
    )


@app.command("eval", cls=PlainUsage)
def eval_cmd(
    target: str = typer.Argument(
        ..., metavar="TARGET", help="artifact, run folder (every artifact in it), or zoo model name with --weights"
    ),
    data: Path = typer.Option(
        ...,
        "--data",
        metavar="PATH",
        help="ImageFolder, .npz of inputs and labels, COCO annotation .json, or a folder holding a COCO .json and its images",
    ),
    images: Optional[Path] = typer.Option(
        None, "--images", metavar="DIR", help="the images a COCO annotation file names"
    ),
    limit: Optional[str] = typer.Option(
        None, "--limit", metavar="N", help="evaluate the first N images only (a quick look)"
    ),
    weights: Optional[Path] = typer.Option(None, "--weights", help="weights of the zoo model TARGET"),
    num_classes: Optional[str] = typer.Option(
        None, "--num-classes", metavar="N", help="zoo model TARGET: classes of the head (default: from the data)"
    ),
    width_mult: Optional[str] = typer.Option(
        None, "--width-mult", "-a", metavar="FLOAT", help="zoo model TARGET: width multiplier"
    ),
    resolution: Optional[str] = typer.Option(
        None, "--resolution", "-r", metavar="RES", help="zoo model TARGET: input side or HxW"
    ),
    backend: Optional[str] = typer.Option(None, "--backend", help="only these backends' artifacts, comma-separated"),
    category_map: Optional[str] = typer.Option(
        None,
        "--category-map",
        metavar="MAP",
        help="model label → COCO category id: 0:1,1:3,... or a JSON file (default: label i is the i-th category by id, after background)",
    ),
    label_offset: Optional[str] = typer.Option(
        None,
        "--label-offset",
        metavar="K",
        help="label of the first category (default 1 for models with background class 0, else 0)",
    ),
    report: Optional[Path] = typer.Option(
        None,
        "--report",
        metavar="DIR",
        help="write results.json (merged into a benchmark's there), report.md, report.html and eval.json to DIR",
    ),
    save_predictions: Optional[Path] = typer.Option(
        None, "--save-predictions", metavar="FILE", help="write the COCO results JSON that was scored"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the evaluation as JSON on stdout"),
) -> None:
    """Measure accuracy (top-1/top-5, or COCO mAP) of every artifact on your data."""

    def run() -> None:
        import warnings

        from edgecv.cli.progress import EVAL, RichBars
        from edgecv.evaluate.loop import evaluate
        from edgecv.evaluate.records import save_predictions as save_preds
        from edgecv.evaluate.records import write_eval_report
        from edgecv.models.spec import parse_resolution

        res = None
        if resolution is not None:
            res = parse_flag(resolution, parse_resolution, "--resolution", "an integer or HxW")
        zoo = {
            "num_classes": parse_flag(num_classes, int, "--num-classes", "an integer"),
            "width_mult": parse_flag(width_mult, float, "--width-mult", "a number"),
            "resolution": res,
        }

        with warnings.catch_warnings(), RichBars(console, **EVAL) as bars:
            quiet_library_warnings()
            result = evaluate(
                target,
                data,
                images=images,
                limit=parse_flag(limit, int, "--limit", "an integer"),
                weights=weights,
                backends=split_list(backend) or None,
                category_map=category_map,
                label_offset=parse_flag(label_offset, int, "--label-offset", "an integer"),
                zoo_options=zoo,
                observer=bars,
            )
        doc = result.to_dict()
        written = write_eval_report(result, report) if report is not None else {}
        if save_predictions is not None:
            for i, path in enumerate(save_preds(result, save_predictions)):
                written[f"predictions {result.results[i].artifact}"] = path
        if as_json:
            emit_json(doc)
        else:
            out_console.print(_eval_table(doc))
            print_notes(result.results)
        for message in result.warnings:
            console.print(Text.assemble(("warning:", "bold yellow"), " ", message), soft_wrap=True)
        for name, path in written.items():
            console.print(f"{name}: {path}", markup=False)

    guarded(run)
