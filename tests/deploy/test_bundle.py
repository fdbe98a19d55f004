"""``edgecv bundle RUN --target jetson``: the files a board needs, and scripts that pass ``bash -n`` and
shellcheck and, run against a fake trtexec of each TensorRT major, use only the flags that version has."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile

import pytest

from edgecv.deploy.bundle import make_bundle
from tests.conftest import assert_user_error, run_cli

from .conftest import write_run_folder
from .fake_tools import env_for, read_log, write_tools

SCRIPTS = ("build_engine.sh", "benchmark.sh")


@pytest.fixture
def bundle(run_folder, tmp_path):
    make_bundle(run_folder, tmp_path / "bundle", max_batch=8)
    return tmp_path / "bundle"


def test_bundle_holds_what_the_board_needs(bundle):
    names = {p.name for p in bundle.iterdir()}
    assert {
        "model.onnx",
        "model.fp16.onnx",
        "model.int8.onnx",
        "model.int8.fp16.onnx",
        "manifest.json",
        "input_spec.json",
        "labels.json",
        "preflight.json",
        "bundle.json",
        "README.md",
        *SCRIPTS,
    } <= names
    preflight = json.loads((bundle / "preflight.json").read_text())
    assert all(r["would_build"] for r in preflight.values())
    readme = (bundle / "README.md").read_text()
    for fragment in (
        "JetPack",
        "TensorRT 10.3",
        "./build_engine.sh",
        "./benchmark.sh",
        "edgecv import-trtexec",
        "edgecv report",
        "--no-deps",
        "python3-libnvinfer",
        "cuda-python",
        "neither PyTorch",
    ):
        assert fragment in readme, fragment


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse_and_pass_shellcheck(bundle, script):
    path = bundle / script
    assert path.stat().st_mode & 0o111
    assert "set -euo pipefail" in path.read_text()
    subprocess.run(["bash", "-n", str(path)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    proc = subprocess.run(["shellcheck", "-S", "style", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _build(bundle, tmp_path, version, **env):
    bin_dir = write_tools(tmp_path / "bin")
    log = tmp_path / f"calls-{version}.jsonl"
    proc = subprocess.run(
        ["bash", str(bundle / "build_engine.sh"), str(tmp_path / "engines")],
        capture_output=True,
        text=True,
        env=env_for(bin_dir, log, version, **env),
        timeout=60,
    )
    builds = [c["args"] for c in read_log(log) if c["tool"] == "trtexec" and "--help" not in c["args"]]
    return proc, builds


def _flags(args):
    return {a.split("=")[0] for a in args}


@pytest.mark.parametrize("version", ["10.3.0", "10.16.1"])
def test_build_script_on_10_is_strongly_typed(bundle, tmp_path, version):
    proc, builds = _build(bundle, tmp_path, version)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert len(builds) == 2
    fp16, int8 = builds
    assert (
        "--onnx=" + str(bundle / "model.fp16.onnx") in fp16 and "--onnx=" + str(bundle / "model.int8.fp16.onnx") in int8
    )
    for args in builds:
        assert "--stronglyTyped" in args and not _flags(args) & {"--fp16", "--int8"}
        assert {
            "--saveEngine",
            "--timingCacheFile",
            "--memPoolSize",
            "--minShapes",
            "--optShapes",
            "--maxShapes",
        } <= _flags(args)
        assert "--maxShapes=input:8x3x16x16" in args and "--minShapes=input:1x3x16x16" in args
    engines = tmp_path / "engines"
    for precision in ("fp16", "int8"):
        assert f"engine: {engines}/model.{precision}.engine" in proc.stdout  # says where each engine went
        sidecar = json.loads((engines / f"model.{precision}.json").read_text())
        assert sidecar["tensorrt"] == ".".join(version.split(".")[:3]) and sidecar["gpu"] == "Orin"
        assert sidecar["compute_capability"] == "8.7" and sidecar["strongly_typed"] is True
        assert isinstance(sidecar["metadata"], dict)


def test_build_script_weak_typing_on_10(bundle, tmp_path):
    proc, builds = _build(bundle, tmp_path, "10.3.0", WEAK_TYPING="1")
    assert proc.returncode == 0, proc.stderr
    fp16, int8 = builds
    assert "--fp16" in fp16 and "--onnx=" + str(bundle / "model.onnx") in fp16
    assert {"--int8", "--fp16"} <= set(int8) and "--onnx=" + str(bundle / "model.int8.onnx") in int8
    assert "--stronglyTyped" not in fp16 + int8


def test_build_script_on_11_uses_no_removed_flag(bundle, tmp_path):
    proc, builds = _build(bundle, tmp_path, "11.1.0")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for args in builds:
        assert not _flags(args) & {"--fp16", "--int8", "--best"}
    refused, _ = _build(bundle, tmp_path, "11.1.0", WEAK_TYPING="1")
    assert refused.returncode == 2 and "TensorRT 11.1.0 builds strongly typed only" in refused.stderr


def test_build_script_on_8_uses_the_weak_flags(bundle, tmp_path):
    proc, builds = _build(bundle, tmp_path, "8.6.1")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "--fp16" in builds[0] and "--stronglyTyped" not in builds[0]


def test_build_script_dla(bundle, tmp_path):
    proc, builds = _build(bundle, tmp_path, "10.3.0", DLA_CORE="1", PRECISIONS="fp32 fp16")
    assert proc.returncode == 0, proc.stderr
    assert "skipping fp32 on DLA" in proc.stderr and len(builds) == 1
    assert {"--useDLACore=1", "--allowGPUFallback"} <= set(builds[0])


def test_build_script_finds_a_missing_file_before_building(bundle, tmp_path):
    (bundle / "model.int8.fp16.onnx").unlink()
    proc, builds = _build(bundle, tmp_path, "10.3.0")
    assert proc.returncode == 2 and "model.int8.fp16.onnx is not in this bundle" in proc.stderr and builds == []


def test_build_script_builds_the_other_engines_when_one_fails(bundle, tmp_path):
    bin_dir = write_tools(tmp_path / "bin")
    # trtexec refusing the FP16 graph, as TensorRT's parser does with a run-time NMS threshold.
    wrapper = tmp_path / "trtexec-refusing-fp16"
    wrapper.write_text(
        f'#!/bin/sh\ncase "$*" in *model.fp16.onnx*) echo "[E] parse error"; exit 1 ;; esac\nexec {bin_dir}/trtexec "$@"\n'
    )
    wrapper.chmod(0o755)
    (tmp_path / "engines").mkdir()
    (tmp_path / "engines" / "model.fp16.engine").write_text("an engine from an earlier run")
    proc, builds = _build(bundle, tmp_path, "10.3.0", TRTEXEC=str(wrapper))
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert "failed to build fp16" in proc.stderr and "failed to build: fp16" in proc.stderr
    assert [b for b in builds if "--onnx=" + str(bundle / "model.int8.fp16.onnx") in b]  # INT8 still built
    assert (tmp_path / "engines" / "model.int8.engine").is_file()
    assert not (tmp_path / "engines" / "model.fp16.engine").exists()  # no stale engine for benchmark.sh


def test_static_batch_has_no_shapes(onnx_files, tmp_path):
    run = write_run_folder(tmp_path / "static", onnx_files, dynamic_batch=False)
    make_bundle(run, tmp_path / "b")
    proc, builds = _build(tmp_path / "b", tmp_path, "10.3.0", PRECISIONS="fp16")
    assert proc.returncode == 0, proc.stderr
    assert not _flags(builds[0]) & {"--minShapes", "--optShapes", "--maxShapes"}


@pytest.mark.parametrize(
    ("version", "gpu_only", "with_copies"),
    [
        ("10.3.0", {"--useCudaGraph", "--noDataTransfers"}, set()),
        ("11.1.0", set(), {"--includeDataTransfers", "--noCudaGraph"}),
    ],
)
def test_benchmark_script(bundle, tmp_path, version, gpu_only, with_copies):
    bin_dir = write_tools(tmp_path / "bin", with_edgecv=True)
    log = tmp_path / "calls.jsonl"
    env = env_for(bin_dir, log, version)
    subprocess.run(["bash", str(bundle / "build_engine.sh")], check=True, capture_output=True, env=env, timeout=60)
    proc = subprocess.run(["bash", str(bundle / "benchmark.sh")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = bundle / "results"
    for name in ("nvpmodel.txt", "jetson_clocks.txt", "nv_tegra_release.txt", "tegrastats.log"):
        assert (results / name).is_file(), name
    assert "MAXN" in (results / "nvpmodel.txt").read_text()
    runs = [c["args"] for c in read_log(log) if c["tool"] == "trtexec" and any("--loadEngine" in a for a in c["args"])]
    assert len(runs) == 4  # two engines × (GPU only, with copies)
    assert set(runs[0]) >= gpu_only | {"--shapes=input:1x3x16x16"} and set(runs[1]) >= with_copies
    doc = json.loads((results / "results.json").read_text())
    backends = [r["backend"] for r in doc["results"]]
    assert backends.count("trtexec") == 4 and backends.count("tensorrt") == 2  # trtexec's and edgecv's figures
    assert doc["machine"]["gpu"] == "Orin" and doc["machine"]["arch"] == "aarch64"
    assert "GR3D_FREQ" in (results / "tegrastats.log").read_text()  # tegrastats ran during the runs


def test_bundle_as_archive_and_cli(run_folder, tmp_path):
    proc = run_cli(
        "bundle", run_folder, "--target", "jetson", "--out", tmp_path / "b.tar.gz", "--dla-core", "0", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["settings"]["dla_core"] == 0 and summary["preflight_errors"] == 0
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        names = tar.getnames()
    assert "b/build_engine.sh" in names and "b/model.int8.fp16.onnx" in names
    assert (
        'DLA_CORE="${DLA_CORE:-0}"'
        in tarfile.open(tmp_path / "b.tar.gz").extractfile("b/build_engine.sh").read().decode()
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--target", "raspberry"], "--target"),
        (["--dla-core", "-1"], "--dla-core"),
    ],
)
def test_bundle_user_errors(run_folder, tmp_path, args, fragment):
    assert_user_error(run_cli("bundle", run_folder, "--out", tmp_path / "x", *args), fragment)


def test_bundle_needs_a_run_folder(tmp_path):
    assert_user_error(run_cli("bundle", tmp_path), "manifest.json")


def test_bundle_refuses_a_non_empty_out(run_folder, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert_user_error(run_cli("bundle", run_folder, "--out", tmp_path / "full"), "not an empty folder")


def _run_with_a_bad_fp16_copy(run_folder):
    """A run folder holding an FP16 copy whose NMS thresholds are computed at run time."""
    import onnx

    from .test_fp16_copy import nms_model

    model = nms_model()
    for node in model.graph.node:
        if node.op_type == "NonMaxSuppression":
            node.input[3] = "iou_f32"
    model.graph.node.insert(2, onnx.helper.make_node("Cast", ["iou"], ["iou_f32"], name="iou_cast", to=1))
    onnx.save(model, run_folder / "model.fp16.onnx")
    return run_folder


def test_bundle_refuses_a_file_tensorrt_would_not_build(run_folder, tmp_path):
    run = _run_with_a_bad_fp16_copy(run_folder)
    proc = run_cli("bundle", run, "--out", tmp_path / "b")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.fp16.onnx" in lines[0] and "[nms] nms" in lines[0], proc.stderr
    assert "--allow-preflight-errors" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "b").exists()
    allowed = run_cli("bundle", run, "--out", tmp_path / "b", "--allow-preflight-errors", "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["preflight_errors"] == 2 and "preflight error(s)" in allowed.stderr
    preflight = json.loads((tmp_path / "b" / "preflight.json").read_text())
    assert preflight["model.fp16.onnx"]["would_build"] is False


def test_bundle_preflight_reads_the_manifest_as_check_does(onnx_files, tmp_path):
    from .test_preflight import _run_with_float_add

    run = _run_with_float_add(tmp_path, onnx_files)
    make_bundle(run, tmp_path / "b")
    preflight = json.loads((tmp_path / "b" / "preflight.json").read_text())
    check = json.loads(run_cli("check", run, "--json").stdout)["reports"]
    assert (
        preflight["model.int8.onnx"]["findings"]
        == next(r for r in check if r["artifact"] == "model.int8.onnx")["findings"]
    )
    rules = {f["rule"] for r in preflight.values() for f in r["findings"]}
    assert "qdq-residual-add" not in rules
