"""The README's command lines work as written: every `edgecv ...` line of its code blocks parses
(command, options, arguments), every run folder it names is the one export makes, and the lines that
need no GPU, TensorRT or files of the user's run end to end (on a smaller model and fewer calls)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.conftest import invoke_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[list[str]]:
    """Each `edgecv` command of the README's indented code blocks as argv: continuation lines
    joined, `&&` chains split, comments dropped."""
    logical, pending = [], ""
    for line in README.read_text().splitlines():
        if not line.startswith("    "):
            pending = ""
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        logical.append(text)
    commands = []
    for text in logical:
        words = shlex.split(text, comments=True)
        chain: list[str] = []
        for word in [*words, "&&"]:
            if word != "&&":
                chain.append(word)
                continue
            if chain[:1] == ["edgecv"]:
                commands.append(chain)
            chain = []
    return commands


def parse(argv: list[str]):
    """The click context of ``argv`` (starting with ``edgecv``) without running the command: raises
    click's UsageError for an unknown command or option, a missing argument or a bad choice."""
    from typer.main import get_command

    from edgecv.cli import app

    command, args, name = get_command(app), argv[1:], "edgecv"
    while hasattr(command, "commands"):
        name, args = args[0], args[1:]
        command = command.commands[name]
    return command.make_context(name, list(args))


COMMANDS = readme_commands()


def test_the_readme_has_commands_to_check():
    names = {argv[1] for argv in COMMANDS}
    assert {"export", "benchmark", "eval", "data", "check", "bundle", "predict", "report", "sweep"} <= names


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a[1:4]) for a in COMMANDS])
def test_readme_command_parses(argv):
    parse(argv)


def default_folder(params: dict) -> str:
    """The run folder `edgecv export` makes for these parsed flags when --out is not given."""
    from edgecv.export.options import default_run_name
    from edgecv.models.registry import apply_alias, check_resolution, get_entry
    from edgecv.models.spec import parse_resolution

    entry = get_entry(params["model"])
    chosen = {k: params[k] for k in ("groups", "variant", "backbone") if params.get(k) is not None}
    width = float(params["width_mult"]) if params.get("width_mult") else None
    alias_width, alias_variant = apply_alias(params["model"], width, chosen)
    resolution = parse_resolution(params["resolution"]) if params.get("resolution") else entry.default_resolution
    return default_run_name(
        entry.name,
        float(entry.default_width_mult if alias_width is None else alias_width),
        check_resolution(resolution, entry),
        {**entry.default_variant_options, **alias_variant},
        int(params.get("batch") or 1),
        bool(params.get("dynamic_batch")),
    )


def test_readme_run_folders_are_the_ones_export_makes():
    made = set()
    for argv in COMMANDS:
        if argv[1] == "export":
            params = parse(argv).params
            made.add(str(params["out"]) if params.get("out") else f"runs/{default_folder(params)}")
    named = {"/".join(Path(a).parts[:2]) for argv in COMMANDS for a in argv if a.startswith("runs/")}
    assert named and named <= made, (named - made, made)


def test_a_backbone_reads_as_part_of_the_model_name_not_as_a_batch():
    from edgecv.export.options import default_run_name

    assert default_run_name("ssdlite", 1.0, 320, {"backbone": "mobilenetv3"}) == "ssdlite-mobilenetv3-w1.0-r320"
    assert default_run_name("yolox", 1.0, 416, {"variant": "nano"}, batch=4) == "yolox-nano-w1.0-r416-b4"
    assert default_run_name("shufflenetv1", 1.0, 224, {"groups": 3}) == "shufflenetv1-groups3-w1.0-r224"


# The README lines run end to end, in order, and what each is given to stay quick: a smaller model
# and calibration set (into the folder the README's line makes, which the lines after it read),
# fewer timed calls, in one process, fewer generated images.
LIGHTER = {
    "edgecv export mobilenetv2 --int8": {
        "--width-mult": "0.35",
        "--resolution": "64",
        "--calib-size": "16",
        "--out": "runs/mobilenetv2-w1.0-r224",
    },
    "edgecv benchmark runs/mobilenetv2-w1.0-r224": {"--iterations": "5", "--warmup": "1", "--in-process": None},
    "edgecv benchmark runs/mobilenetv2-w1.0-r224 --iterations 300 --threads 2 --report runs/mobilenetv2-w1.0-r224/report": {
        "--iterations": "5",
        "--warmup": "1",
        "--in-process": None,
    },
    "edgecv data shapes --out data/shapes --images 500": {"--images": "16"},
}


def lighter(argv: list[str], changes: dict[str, str | None]) -> list[str]:
    """``argv`` with the values of ``changes``' options replaced, or the options added."""
    out = list(argv)
    for flag, value in changes.items():
        if flag in out and value is not None:
            out[out.index(flag) + 1] = value
        elif flag not in out:
            out += [flag] if value is None else [flag, value]
    return out


@pytest.mark.slow
def test_readme_commands_that_need_no_gpu_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runnable = [argv for argv in COMMANDS if " ".join(argv) in LIGHTER]
    assert len(runnable) == len(LIGHTER), "a README line this test runs has changed: update LIGHTER"
    for argv in runnable:
        result = invoke_cli(*lighter(argv, LIGHTER[" ".join(argv)])[1:])
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
    assert (tmp_path / "runs/mobilenetv2-w1.0-r224/report/report.html").is_file()
    assert (tmp_path / "data/shapes/val/annotations.json").is_file()
