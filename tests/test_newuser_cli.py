"""What a new user meets, through the CLI in-process (typer's CliRunner) and the library:
warnings that reach the terminal and the manifest, messages whose brackets survive, stale artifacts,
in-sample fidelity, model filters and aliases, --version and the help text."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import edgecv
from edgecv.cli import app
from tests.conftest import export_conv_onnx
from tests.export.fake_stages import fake_stages

SMALL = ["--width-mult", "0.35", "--resolution", "64"]


@pytest.fixture
def invoke():
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, [str(a) for a in args])

    return run


@pytest.fixture(scope="module")
def weights_1000(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "w1000.pth"
    torch.save(edgecv.create_model("mobilenetv2", width_mult=0.35, resolution=64).state_dict(), path)
    return path


# --- 1: warnings reach the terminal and the manifest ---------------------------------------------


def test_cli_shows_and_records_head_reinitialisation(invoke, tmp_path, weights_1000):
    res = invoke(
        "export",
        "mobilenetv2",
        *SMALL,
        "--weights",
        weights_1000,
        "--num-classes",
        "10",
        "--backend",
        "onnxruntime",
        "--out",
        tmp_path / "run",
    )
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "re-initialised" in res.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert any("re-initialised" in w for w in manifest["warnings"]), manifest["warnings"]


def test_library_warns_and_records_on_every_export(tmp_path, weights_1000):
    from edgecv.models.weights import HeadReinitializedWarning

    for i in range(2):  # "default" filters show a warning once per location; each export reports it
        with pytest.warns(HeadReinitializedWarning):
            result = edgecv.export_model(
                "mobilenetv2",
                out=tmp_path / f"r{i}",
                width_mult=0.35,
                resolution=64,
                weights=str(weights_1000),
                num_classes=10,
                backends=(),
            )
        assert sum("re-initialised" in w for w in result.manifest["warnings"]) == 1


# --- 4: brackets in messages are text, not markup ------------------------------------------------


def test_bracketed_weights_path_is_quoted_whole(invoke, tmp_path):
    res = invoke("export", "mobilenetv2", "--weights", "nope[best].pth", "--out", tmp_path / "run")
    assert res.exit_code == 2
    assert "nope[best].pth" in res.output


def test_tensorrt_hint_keeps_the_extra(invoke, tmp_path):
    pytest.importorskip("edgecv.tensorrt.build")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        res = invoke("export", "mobilenetv2", "--backend", "tensorrt", "--out", tmp_path / "run")
        assert res.exit_code == 2 and "edgecv[tensorrt]" in res.output, res.output
    else:  # pragma: no cover - a machine with TensorRT
        pytest.skip("TensorRT is installed")


def test_reporter_warning_keeps_brackets():
    from io import StringIO

    from rich.console import Console

    from edgecv.cli.progress import RichReporter

    buf = StringIO()
    RichReporter(Console(file=buf, width=200)).warn("calibration folder data[v2] is small")
    assert "data[v2]" in buf.getvalue()


# --- 6: a run folder holds only what its manifest vouches for ------------------------------------


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_reexport_with_other_options_removes_what_it_does_not_produce(tmp_path):
    run = tmp_path / "run"
    stages = fake_stages()
    kw = dict(out=run, width_mult=0.35, resolution=64, backends=("openvino",), stages=[*stages.values()])
    first = edgecv.export_model("mobilenetv2", int8=True, calib_size=8, **kw)
    assert (run / "model.int8.onnx").is_file() and (run / "calibration" / "ranges.json").is_file()
    assert "calibration/ranges.json" in first.manifest["caches"]
    (run / "notes.txt").write_text("the user's own file")
    (run / "report").mkdir()
    (run / "report" / "results.json").write_text("{}")
    # Dropping INT8 needs --force; a forced re-export that then fails leaves none of the old files.
    with pytest.raises(edgecv.errors.OutputPathError, match="--force"):
        edgecv.export_model("mobilenetv2", batch=4, **kw)
    stages["simplify"].fail = edgecv.errors.VerificationError("simplify", "differs from PyTorch")
    with pytest.raises(edgecv.errors.VerificationError):
        edgecv.export_model("mobilenetv2", batch=4, atol=0.0, rtol=0.0, force=True, **kw)
    assert not (run / "model.int8.onnx").exists()
    stages["simplify"].fail = None
    second = edgecv.export_model("mobilenetv2", batch=4, **kw)
    listed = set(second.manifest["files"]) | {"manifest.json", "notes.txt", "report/results.json"}
    assert set(_tree(run)) == listed, _tree(run)
    assert not (run / "calibration").exists(), "an emptied folder of the old run is removed too"
    assert second.manifest["stale_files"] == []


def test_stale_paths_never_leave_the_run_folder(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "precious.txt"
    outside.write_text("keep me")
    kw = dict(out=run, width_mult=0.35, resolution=64, backends=(), stages=[*fake_stages().values()])
    edgecv.export_model("mobilenetv2", **kw)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"]["../precious.txt"] = {"sha256": "0", "size_bytes": 7}
    manifest["stale_files"] = ["manifest.json", str(outside)]
    (run / "manifest.json").write_text(json.dumps(manifest))
    edgecv.export_model("mobilenetv2", **kw)
    assert outside.read_text() == "keep me" and (run / "manifest.json").is_file()


def test_default_run_folder_tells_batch_settings_apart(tmp_path):
    from edgecv.export.options import default_run_name

    assert default_run_name("mobilenetv2", 1.0, 224, {}) == "mobilenetv2-w1.0-r224"
    assert default_run_name("mobilenetv2", 1.0, 224, {}, batch=4) == "mobilenetv2-w1.0-r224-b4"
    assert default_run_name("mobilenetv2", 1.0, 224, {}, dynamic_batch=True) == "mobilenetv2-w1.0-r224-dyn"
    result = edgecv.export_model(
        "mobilenetv2",
        runs_root=tmp_path,
        width_mult=0.35,
        resolution=64,
        batch=4,
        backends=(),
        stages=[*fake_stages().values()],
    )
    assert result.run_dir.name == "mobilenetv2-w0.35-r64-b4"


# --- 5: in-sample fidelity is called in-sample ----------------------------------------------------


@pytest.mark.slow
def test_in_sample_fidelity_is_never_called_held_out(invoke, tmp_path):
    import numpy as np

    from edgecv.report.format import fidelity_label
    from edgecv.report.plots import _fidelity_point

    data = tmp_path / "seven.npy"
    np.save(data, np.random.default_rng(0).standard_normal((7, 3, 64, 64)).astype(np.float32))
    res = invoke(
        "export",
        "mobilenetv2",
        *SMALL,
        "--int8",
        "--calib",
        data,
        "--sensitivity",
        "--backend",
        "onnxruntime",
        "--out",
        tmp_path / "run",
    )
    assert res.exit_code == 0, res.output
    assert "held out" not in res.output and "held-out" not in res.output, res.output
    assert "in-sample" in res.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    info = manifest["stages"]["int8"]["info"]
    assert info["fidelity_inputs"].startswith("in-sample") and info["sensitivity"]["in_sample"] is True
    report = json.loads((tmp_path / "run" / "calibration" / "report.json").read_text())
    assert report["fidelity_inputs"].startswith("in-sample")
    fidelity = next(a["fidelity"] for a in manifest["artifacts"] if a["name"] == "onnx-int8-cpu")
    assert fidelity["in_sample"] is True
    # The benchmark report's table and plot say so too.
    assert "in-sample" in fidelity_label(fidelity)
    point = _fidelity_point({"fidelity": fidelity})
    assert "in-sample" in point[1] and "held-out" not in point[1]


# --- 7: `edgecv models NAME`, torchvision's names, ambiguous family names -------------------------


def test_models_filters_by_name_or_alias(invoke):
    res = invoke("models", "mobilenet_v2", "--json")
    assert res.exit_code == 0, res.output
    assert [row["name"] for row in json.loads(res.stdout)] == ["mobilenetv2"]
    res = invoke("models", "shufflenet", "--json")
    assert [row["name"] for row in json.loads(res.stdout)] == ["shufflenetv1", "shufflenetv2"]
    res = invoke("models", "shufflenet_v2_x0_5", "--json")
    assert [(row["name"], row["width_mult"]) for row in json.loads(res.stdout)] == [("shufflenetv2", 0.5)]
    res = invoke("models", "resnet")
    assert res.exit_code == 2 and "unknown model 'resnet'" in res.output


def test_torchvision_names_carry_their_width(tmp_path):
    from edgecv.errors import InvalidOptionError

    model = edgecv.create_model("shufflenet_v2_x1_0", resolution=64)
    assert (model.model_name, model.model_config["width_mult"]) == ("shufflenetv2", 1.0)
    assert edgecv.create_model("shufflenet_v2_x0_5", resolution=64).model_config["width_mult"] == 0.5
    with pytest.raises(InvalidOptionError, match="α=0.5"):
        edgecv.create_model("shufflenet_v2_x0_5", width_mult=1.0)
    result = edgecv.export_model("shufflenet_v2_x0_5", runs_root=tmp_path, resolution=64, backends=())
    assert result.run_dir.name == "shufflenetv2-w0.5-r64"


def test_bare_family_name_is_ambiguous(invoke, tmp_path):
    res = invoke("export", "shufflenet", "--out", tmp_path / "run")
    assert res.exit_code == 2
    assert "ambiguous" in res.output and "shufflenetv1" in res.output and "shufflenetv2" in res.output
    assert not (tmp_path / "run").exists()


# --- 8: --version, the runtime API in the README, wrong inputs named in full -----------------------


def test_version(invoke):
    res = invoke("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"edgecv {edgecv.__version__}"


def test_wrong_input_names_every_mismatch(tmp_path):
    import numpy as np

    from edgecv.errors import InputMismatchError
    from edgecv.runtime import load

    path = export_conv_onnx(tmp_path / "conv.onnx")
    with load(path) as rt:
        with pytest.raises(InputMismatchError) as err:
            rt(np.zeros((1, 32, 32, 3), np.uint8))  # a picture as it comes: NHWC, 0..255
        message = str(err.value)
        for fragment in (
            "dtype uint8, not float32",
            "dimension 1 is 32, not 3",
            "dimension 3 is 3, not 32",
            "channels-last (NHWC)",
            "0..255",
        ):
            assert fragment in message, message
        with pytest.raises(InputMismatchError, match=r"rank 3, not 4; one image without its batch axis"):
            rt(np.zeros((3, 32, 32), np.float32))


def test_readme_shows_the_runtime_api_and_what_a_batch_sweep_needs():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "edgecv.runtime.load(" in readme and "preprocess(" in readme and "input_spec_of(" in readme
    sweep = next(line for line in readme.splitlines() if "--batch 1,4,8" in line)
    assert "-dyn" in sweep and "--dynamic-batch" in readme.split(sweep)[0].splitlines()[-1]


# --- 13: help and piped output -------------------------------------------------------------------


def test_help_usage_and_defaults(invoke):
    res = invoke("export", "--help")
    assert res.exit_code == 0
    assert "Usage: edgecv export [OPTIONS] MODEL" in res.output
    text = " ".join(res.output.split())  # help wraps to the terminal
    assert "(default: percentile)" in text and "[default: 17]" in text
    assert "Usage: edgecv benchmark [OPTIONS] TARGET" in invoke("benchmark", "--help").output
    assert "Usage: edgecv models [OPTIONS] [NAME]" in invoke("models", "--help").output


def test_piped_stderr_does_not_wrap_at_80_columns(tmp_path):
    import os
    import subprocess
    import sys

    weights = tmp_path / ("a-rather-long-folder-name-for-checkpoints-" * 3) / "nope[best].pth"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "EDGECV_DEBUG")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecv.cli",
            "export",
            "mobilenetv2",
            "--weights",
            str(weights),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(weights) in lines[0], proc.stderr


def test_stage_lines_stay_whole_on_a_narrow_console():
    from io import StringIO

    from rich.console import Console

    from edgecv.cli.common import _page_width
    from edgecv.cli.progress import RichReporter
    from edgecv.export.stages import STAGES

    assert _page_width(StringIO()) == 160 or "COLUMNS" in __import__("os").environ
    buf = StringIO()
    int8 = next(s for s in STAGES if s.name == "int8")
    info = {
        "calibration": {"calibration": 300, "holdout": 100},
        "method": "percentile",
        "timings_s": {
            "pre_process": 0.4,
            "ranges": 12.0,
            "quantize_tensorrt": 3.0,
            "quantize_cpu": 2.5,
            "nncf_openvino": 20.0,
            "fidelity": 4.0,
        },
    }
    RichReporter(Console(file=buf, width=80)).stage_end(int8, "done", 42.0, info)
    assert len(buf.getvalue().strip().splitlines()) == 1, buf.getvalue()


def _fake_result(tmp_path):
    from edgecv.export.pipeline import ExportResult

    names = [
        ("onnx-fp32", "model.onnx"),
        ("openvino-fp16", "openvino/model.fp16.xml"),
        ("onnx-int8-cpu", "model.int8.cpu.onnx"),
        ("openvino-int8", "openvino/model.int8.xml"),
    ]
    artifacts = [
        {
            "name": n,
            "path": p,
            "backend": "openvino" if "openvino" in n else "onnxruntime",
            "precision": "fp32",
            "intended_for": "onnxruntime",
            "verification": {"passed": True, "outputs": [{"max_abs": 1e-5, "cosine": 1.0, "top1_agreement": 1.0}]},
            "fidelity": {"top1_agreement": 0.99, "sqnr_db": 25.0} if "int8" in n else {},
        }
        for n, p in names
    ]
    manifest = {
        "model": {},
        "stages": {},
        "artifacts": artifacts,
        "files": {p: {"size_bytes": 10**6} for _, p in names},
    }
    return ExportResult(tmp_path / "a-run-folder-with-a-rather-long-name", manifest)


def test_artifact_table_keeps_file_names_whole_at_120_columns(tmp_path):
    from rich.console import Console

    from edgecv.cli.export_tables import artifact_table

    console = Console(width=120, record=True)
    console.print(artifact_table(_fake_result(tmp_path)))
    text = console.export_text()
    for name in ("openvino/model.fp16.xml", "model.int8.cpu.onnx", "openvino/model.int8.xml", "onnx-int8-cpu"):
        assert name in text, text


def test_fidelity_plot_labels_stay_inside_the_frame():
    from edgecv.report.plots import fidelity_figure

    def result(name, ms, top1, verified=False):
        d = {"artifact": name, "batch": 1, "latency": {"median_ms": ms}, "precision": "fp32"}
        d["verification" if verified else "fidelity"] = {"top1_agreement": top1}
        return d

    fig = fidelity_figure(
        [
            result("onnx-fp32", 3.9, 1.0, True),
            result("openvino-int8", 1.5, 0.99),
            result("torch-fp32-eager-baseline", 13.1, 1.0, True),
        ]
    )
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    frame = ax.get_window_extent(renderer)
    for text in ax.texts:
        box = text.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, text.get_text()


# --- 3: --exporter dynamo ------------------------------------------------------------------------


def test_dynamo_without_onnxscript_says_what_to_install(invoke, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    res = invoke("export", "mobilenetv2", "--exporter", "dynamo", "--out", tmp_path / "run")
    assert res.exit_code == 2 and "pip install onnxscript" in res.output, res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_dynamo_export_is_quiet_and_records_the_written_opset(invoke, tmp_path):
    pytest.importorskip("onnxscript")
    import onnx

    res = invoke(
        "export",
        "mobilenetv2",
        *SMALL,
        "--exporter",
        "dynamo",
        "--backend",
        "onnxruntime",
        "--out",
        tmp_path / "run",
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and "[torch.onnx]" not in res.output
    json.loads(res.stdout)  # nothing but the summary on stdout
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    written = next(
        o.version for o in onnx.load(str(tmp_path / "run" / "model.raw.onnx")).opset_import if o.domain == ""
    )
    info = manifest["stages"]["export"]["info"]
    assert info["opset"] == written and info["opset_requested"] == 17
    if written != 17:
        assert any(f"opset {written}" in w for w in manifest["warnings"])


# --- 9: benchmark --shape; static-batch advice that fits a file ----------------------------------


def test_benchmark_shape_for_an_artifact_without_a_fixed_size(invoke, tmp_path):
    path = export_conv_onnx(tmp_path / "any-size.onnx", any_size=True)
    res = invoke("benchmark", path, "--in-process", "-n", "3", "--warmup", "1")
    assert res.exit_code == 2 and "--shape" in res.output, res.output
    res = invoke("benchmark", path, "--in-process", "-n", "3", "--warmup", "1", "--shape", "2x3x40x48", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["results"][0]["batch"] == 2 and doc["settings"]["shape"] == "2x3x40x48"
    res = invoke("benchmark", path, "--in-process", "--shape", "1x4x40x48")
    assert res.exit_code == 2 and "does not fit" in res.output
    assert invoke("benchmark", path, "--shape", "big").exit_code == 2


def test_static_batch_advice_fits_a_single_file(invoke, tmp_path):
    from edgecv.runfolder import SCHEMA

    run = tmp_path / "run"
    run.mkdir()
    export_conv_onnx(run / "model.onnx")
    record = {
        "name": "onnx-fp32",
        "path": "model.onnx",
        "backend": "onnxruntime",
        "precision": "fp32",
        "intended_for": "onnxruntime",
        "batch": 1,
        "dynamic_batch": False,
    }
    (run / "manifest.json").write_text(json.dumps({"schema": SCHEMA, "artifacts": [record], "model": {}}))
    res = invoke("benchmark", run / "model.onnx", "--batch", "1,4")
    assert res.exit_code == 2
    assert "time this file at --batch 1" in res.output and "--dynamic-batch" in res.output
    assert "--backend" not in res.output


# --- 10: throughput with several inferences in flight --------------------------------------------


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_throughput_scenario_keeps_requests_in_flight(invoke, tmp_path, backend):
    path = tmp_path / "conv.onnx"
    torch.onnx.export(
        torch.nn.Conv2d(3, 8, 3),
        (torch.zeros(1, 3, 32, 32),),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["out"],
    )
    res = invoke(
        "benchmark",
        path,
        "--backend",
        backend,
        "--scenario",
        "throughput",
        "--requests",
        "2",
        "-n",
        "10",
        "--warmup",
        "2",
        "--in-process",
        "--json",
    )
    assert res.exit_code == 0, res.output
    (result,) = json.loads(res.stdout)["results"]
    conc = result["concurrency"]
    assert conc["requests"] == 2 and conc["calls"] == 20 and conc["items_per_s"] > 0
    assert result["throughput_ips"] > 0 and conc["vs_single_stream"] > 0
    assert ("AsyncInferQueue" if backend == "openvino" else "concurrent runs") in conc["setup"]
    from edgecv.report.format import result_row

    assert "2 in flight" in result_row(result)["throughput"]
    assert invoke("benchmark", path, "--scenario", "throughput", "--requests", "0").exit_code == 2
