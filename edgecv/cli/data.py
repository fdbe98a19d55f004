"""`edgecv data`: generated data sets."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecv.cli.common import (
    app,
    console,
    emit_json,
    guarded,
    out_console,
    parse_flag,
)

data_app = typer.Typer(
    help="Make evaluation data sets.", no_args_is_help=True, add_completion=False, rich_markup_mode=None
)
app.add_typer(data_app, name="data")


@data_app.command("shapes")
def data_shapes_cmd(
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="DIR",
        help="folder to write the data set to: empty, new, or an earlier shapes set (replaced whole)",
    ),
    images: str = typer.Option(
        "200", "--images", metavar="N", help="pictures in all; a fifth of them form the val split"
    ),
    size: str = typer.Option(
        "160", "--size", metavar="S", help="picture width in pixels (heights vary from 3/4 S to S)"
    ),
    seed: str = typer.Option("0", "--seed", metavar="K", help="the same seed writes the same bytes"),
    as_json: bool = typer.Option(False, "--json", help="print what was written as JSON on stdout"),
) -> None:
    """Write a shapes detection set (COCO train/val) and an ImageFolder of its object crops."""

    def run() -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from edgecv.evaluate.shapes import generate_shapes

        n = parse_flag(images, int, "--images", "an integer")
        with Progress(TextColumn("shapes"), BarColumn(), MofNCompleteColumn(), console=console, transient=True) as bar:
            task = bar.add_task("shapes", total=n)
            summary = generate_shapes(
                out,
                images=n,
                size=parse_flag(size, int, "--size", "an integer"),
                seed=parse_flag(seed, int, "--seed", "an integer"),
                progress=lambda done, total: bar.update(task, completed=done),
            )
        info = summary.to_dict()
        if as_json:
            emit_json(info)
            return
        for split in ("train", "val"):
            out_console.print(
                f"{split}: {info['images'][split]} images, {info['objects'][split]} objects → {info['coco'][split]}; "
                f"{info['crops'][split]} crops → {info['imagefolder'][split]}",
                markup=False,
                soft_wrap=True,
            )
        out_console.print(
            "categories: " + ", ".join(f"{c['id']} {c['name']}" for c in info["categories"]), markup=False
        )

    guarded(run)
