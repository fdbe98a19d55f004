"""`edgecv predict`: run an artifact on pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgecv.cli.common import (
    app,
    console,
    emit_json,
    guarded,
    out_console,
    split_list,
)


@app.command("predict")
def predict_cmd(
    target: str = typer.Argument(..., help="artifact (.onnx .xml .engine), run folder, or zoo model name"),
    images: list[str] = typer.Argument(
        ..., metavar="IMAGES", help="pictures: files, folders (every picture inside) or quoted globs ('val/*.jpg')"
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", metavar="DIR", help="detectors: write each picture with its boxes drawn to DIR"
    ),
    conf: Optional[float] = typer.Option(
        None,
        "--conf",
        help="detectors: lowest score shown (default 0.25, or the artifact's threshold if higher; "
        "never below the threshold baked into the artifact's NMS)",
    ),
    iou: Optional[float] = typer.Option(
        None,
        "--iou",
        help="detectors: extra class-wise NMS at this IoU, at most the artifact's own (with --no-nms "
        "exports: the NMS IoU, default the export's)",
    ),
    classes: Optional[str] = typer.Option(
        None, "--classes", metavar="LIST", help="show only these classes: label indices or names, e.g. 0,2 or car,dog"
    ),
    backend: Optional[str] = typer.Option(None, "--backend", help="runtime to use (default: from the file suffix)"),
    precision: Optional[str] = typer.Option(None, "--precision", help="OpenVINO compute precision f32|bf16|fp16"),
    as_json: bool = typer.Option(False, "--json", help="print the predictions as JSON on stdout"),
) -> None:
    """Run an artifact on pictures: top-5 classes, or detections in original-image pixels (drawn with --out)."""

    def run() -> None:
        from rich.table import Table

        from edgecv.evaluate.predict import predict_images

        preds = predict_images(
            target,
            images,
            out_dir=out,
            backend=backend,
            precision=precision,
            conf=conf,
            iou=iou,
            classes=split_list(classes),
        )
        if as_json:
            emit_json([p.to_dict() for p in preds])
            return
        for p in preds:
            table = Table(title=f"{p.image} ({p.width}×{p.height})", title_justify="left")
            if p.task == "classification":
                for col in ("class", "name", "probability"):
                    table.add_column(col, justify="right" if col != "name" else "left")
                for c in p.classes:
                    table.add_row(str(c["label"]), c["name"], f"{c['probability']:.3f}")
            else:
                for col in ("label", "name", "score", "x1", "y1", "x2", "y2"):
                    table.add_column(col, justify="left" if col == "name" else "right")
                for d in p.detections:
                    table.add_row(str(d["label"]), d["name"], f"{d['score']:.3f}", *(f"{v:.1f}" for v in d["box"]))
                if not p.detections:
                    table.caption = f"no detection scored {p.conf:g} or more"
            out_console.print(table)
            if p.drawn:
                console.print(f"drawn: {p.drawn}", markup=False)

    guarded(run)
