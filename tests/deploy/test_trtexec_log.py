"""``edgecv import-trtexec``: logs in the format trtexec prints (TensorRT 8.4 and 8.6, 10.3 on Orin,
11.1) become an ``edgecv.results/1`` file that ``edgecv report`` compares with a CPU run, each engine
lined up with the ONNX file it was built from."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgecv.deploy.bundle import make_bundle
from edgecv.deploy.trtexec_log import parse_trtexec_log
from edgecv.deploy.trtexec_results import import_logs
from edgecv.report import compare_files
from edgecv.report.schema import validate_results
from edgecv.runfolder import sha256_file
from tests.conftest import assert_user_error, run_cli

from .fake_tools import env_for, write_tools

FIXTURES = Path(__file__).parent / "fixtures"


def test_tensorrt_8_log():
    run = parse_trtexec_log((FIXTURES / "trtexec_8.6_x86.log").read_text())
    assert run["trt_version"] == "8.6.1" and run["device"] == "NVIDIA GeForce RTX 3080"
    assert run["compute_capability"] == "8.6" and run["queries"] == 22651
    assert run["throughput_qps"] == pytest.approx(7549.87)
    lat = run["stats"]["latency"]
    assert lat == pytest.approx(
        {
            "min_ms": 0.170898,
            "max_ms": 0.410645,
            "mean_ms": 0.181052,
            "median_ms": 0.179443,
            "p90_ms": 0.185059,
            "p95_ms": 0.189941,
            "p99_ms": 0.212891,
        }
    )
    assert run["stats"]["gpu_compute"]["median_ms"] == pytest.approx(0.107513)
    assert run["stats"]["h2d"]["mean_ms"] == pytest.approx(0.0573286)
    assert run["stats"]["d2h"]["p99_ms"] == pytest.approx(0.0192871)


def test_version_from_the_running_line_alone():
    text = (FIXTURES / "trtexec_10.3_orin_graph.log").read_text().replace("[I] TensorRT version: 10.3.0\n", "")
    assert "TensorRT version" not in text
    assert parse_trtexec_log(text)["trt_version"] == "10.3.0"


def test_results_document_and_modes():
    doc = import_logs(sorted(FIXTURES.glob("trtexec_1*.log")))
    validate_results(doc)
    by = {r["artifact"].partition(" · ")[0]: r for r in doc["results"]}
    orin = by["tensorrt-int8 [GPU only, CUDA graph]"]  # 10.3: --useCudaGraph --noDataTransfers
    assert orin["batch"] == 4 and orin["throughput_ips"] == pytest.approx(1198.4 * 4)
    assert orin["device"] == "Orin" and orin["latency"]["count"] == 3598
    assert orin["trtexec"]["h2d"]["median_ms"] == 0
    assert "tensorrt-fp16 [with transfers]" in by  # 11.1 asked for --includeDataTransfers --noCudaGraph
    assert doc["versions"]["tensorrt"] == "10.3.0, 11.1.0" and doc["machine"]["compute_capability"] == "8.7, 9.0"


def test_report_compares_a_board_with_a_cpu(tmp_path):
    cpu = {
        "schema": "edgecv.results/1",
        "machine": {"cpu": "AMD EPYC", "arch": "x86_64"},
        "versions": {},
        "results": [
            {
                "artifact": "onnx-fp32",
                "backend": "onnxruntime",
                "scenario": "single-stream",
                "batch": 1,
                "latency": {"count": 200, "median_ms": 6.7, "p90_ms": 7.0},
                "throughput_ips": 149.0,
            }
        ],
        "skipped": [],
    }
    (tmp_path / "cpu.json").write_text(json.dumps(cpu))
    made = run_cli("import-trtexec", FIXTURES / "trtexec_8.6_x86.log", "--out", tmp_path / "jetson.json")
    assert made.returncode == 0, made.stderr
    proc = run_cli("report", tmp_path / "cpu.json", tmp_path / "jetson.json", "--json")
    assert proc.returncode == 0, proc.stderr
    comparison = json.loads(proc.stdout)
    assert {r["artifact"] for r in comparison["rows"]} == {"onnx-fp32", "tensorrt-fp16 [with transfers]"}


@pytest.mark.parametrize("name", ["not_trtexec.log", "trtexec_8.6_build_failed.log"])
def test_not_a_usable_log_exits_2(name):
    assert_user_error(run_cli("import-trtexec", FIXTURES / name), name)


def test_missing_log_exits_2(tmp_path):
    assert_user_error(run_cli("import-trtexec", tmp_path / "absent.log"), "does not exist")


def test_tensorrt_8_4_log_gives_p99_only():
    run = parse_trtexec_log((FIXTURES / "trtexec_8.4_xavier.log").read_text())
    assert run["trt_version"] == "8.4.1" and run["device"] == "Xavier"
    assert set(run["stats"]["latency"]) == {"min_ms", "max_ms", "mean_ms", "median_ms", "p99_ms"}
    assert run["stats"]["end_to_end"]["median_ms"] == pytest.approx(2.07495)
    (result,) = import_logs([FIXTURES / "trtexec_8.4_xavier.log"])["results"]
    assert result["latency"]["p90_ms"] is None and result["latency"]["p99_ms"] == pytest.approx(2.41406)


def test_cli_prints_a_dash_for_what_the_log_lacks():
    proc = run_cli("import-trtexec", FIXTURES / "trtexec_8.4_xavier.log")
    assert proc.returncode == 0, proc.stderr
    assert "p90 —" in proc.stdout and "None" not in proc.stdout


def test_trtexec_counts_no_outliers_so_none_are_written():
    (result,) = import_logs([FIXTURES / "trtexec_8.6_x86.log"])["results"]
    assert result["latency"]["outliers"] is None and result["latency"]["std_ms"] is None


def test_report_of_an_old_log_shows_dashes_not_none(tmp_path):
    from edgecv.report import write_report

    doc = import_logs([FIXTURES / "trtexec_8.4_xavier.log"])
    md = write_report(doc, tmp_path)["report.md"].read_text()
    assert "None" not in md and "GPU GPU" not in md
    detail = next(line for line in md.splitlines() if line.startswith("| tensorrt-fp16") and "/" in line)
    assert detail.rstrip(" |").split(" | ")[-2] == "—"  # outliers: trtexec counts none
    # With p99 only there is no p90 to rank the engine by: the recommendation says so.
    assert "not ranked: tensorrt-fp16" in md and "no p90 figure" in md


def test_each_row_keeps_its_own_tensorrt_version_and_gpu():
    doc = import_logs([FIXTURES / "trtexec_10.3_orin_graph.log", FIXTURES / "trtexec_8.4_xavier.log"])
    orin, xavier = doc["results"]
    assert orin["versions"] == {"tensorrt": "10.3.0"} and orin["device"] == "Orin"
    assert xavier["versions"] == {"tensorrt": "8.4.1"} and xavier["trtexec"]["gpu"] == "Xavier"
    assert xavier["trtexec"]["compute_capability"] == "7.2"
    # The two rows' names say which board and version each ran on.
    assert orin["artifact"].endswith("Orin, TensorRT 10.3.0") and "Xavier, TensorRT 8.4.1" in xavier["artifact"]
    assert doc["versions"]["tensorrt"] == "10.3.0, 8.4.1"
    assert doc["machine"]["gpu"] == "Orin + Xavier"


def test_machine_names_the_gpu_once():
    doc = import_logs([FIXTURES / "trtexec_8.6_x86.log"])
    assert doc["machine"]["cpu"] == "NVIDIA GeForce RTX 3080 (compute capability 8.6)"
    assert doc["results"][0]["artifact"] == "tensorrt-fp16 [with transfers]"


def test_machine_of_a_log_without_device_lines(tmp_path):
    text = (FIXTURES / "trtexec_11.1_defaults.log").read_text()
    kept = [line for line in text.splitlines() if "Selected Device" not in line and "Compute Capability" not in line]
    (tmp_path / "bare.log").write_text("\n".join(kept) + "\n")
    machine = import_logs([tmp_path / "bare.log"])["machine"]
    assert "GPU GPU" not in machine["cpu"] and "unknown" not in machine["cpu"]
    assert machine["gpu"] is None


def _engine_log(tmp_path: Path, engine: Path) -> Path:
    """The 10.3 fixture's run, timing ``engine`` at batch 1."""
    text = (FIXTURES / "trtexec_10.3_orin_graph.log").read_text()
    text = text.replace("--loadEngine=engines/model.int8.engine", f"--loadEngine={engine}")
    text = text.replace(" --shapes=input:4x3x224x224", "")
    log = tmp_path / "logs" / f"trtexec_{engine.stem}_gpu.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(text)
    return log


@pytest.fixture
def bundle(run_folder, tmp_path):
    make_bundle(run_folder, tmp_path / "bundle", max_batch=8)
    return tmp_path / "bundle"


def _sidecar(bundle: Path, precision: str, source: str, sha: str | None = None) -> Path:
    engine = bundle / "engines" / f"model.{precision}.engine"
    engine.parent.mkdir(exist_ok=True)
    engine.write_bytes(b"plan")
    sidecar = {"precision": precision, "source_onnx": source, "onnx_sha256": sha or sha256_file(bundle / source)}
    engine.with_suffix(".json").write_text(json.dumps(sidecar))
    return engine


def test_strongly_typed_engine_is_traced_to_the_onnx_its_copy_came_from(bundle, tmp_path):
    engine = _sidecar(bundle, "int8", "model.int8.fp16.onnx")
    (result,) = import_logs([_engine_log(tmp_path, engine)], bundle)["results"]
    assert result["source_onnx"] == "model.int8.onnx"
    assert result["source_sha256"] == sha256_file(bundle / "model.int8.onnx")


def test_engine_from_the_run_folders_own_onnx_needs_no_bundle(bundle, tmp_path):
    engine = _sidecar(bundle, "fp16", "model.onnx")  # TensorRT 10 weakly typed: --fp16 on model.onnx
    (result,) = import_logs([_engine_log(tmp_path, engine)])["results"]
    assert result["source_onnx"] == "model.onnx" and result["source_sha256"] == sha256_file(bundle / "model.onnx")


def test_logs_brought_home_without_the_engines_match_by_the_bundles_names(bundle, tmp_path):
    log = _engine_log(tmp_path, Path("/board/bundle/engines/model.int8.engine"))
    (result,) = import_logs([log], bundle)["results"]
    assert result["source_sha256"] == sha256_file(bundle / "model.int8.onnx")
    (unmatched,) = import_logs([log])["results"]
    assert "source_sha256" not in unmatched


def test_engine_built_from_another_onnx_is_not_matched(bundle, tmp_path):
    engine = _sidecar(bundle, "int8", "model.int8.fp16.onnx", sha="0" * 64)
    (result,) = import_logs([_engine_log(tmp_path, engine)], bundle)["results"]
    assert "source_sha256" not in result
    assert any("built from another model.int8.fp16.onnx" in n for n in result["notes"])


def test_bundle_option_wants_a_bundle(tmp_path):
    proc = run_cli("import-trtexec", FIXTURES / "trtexec_8.6_x86.log", "--bundle", tmp_path)
    assert_user_error(proc, "edgecv bundle", "bundle.json")


def _cpu_results(run_folder: Path, tmp_path: Path) -> Path:
    """What `edgecv benchmark RUN --report cpu` records for the run's two ONNX files."""

    def row(name: str, path: str, p90: float) -> dict:
        return {
            "artifact": name,
            "backend": "onnxruntime",
            "scenario": "single-stream",
            "batch": 1,
            "path": str(run_folder / path),
            "latency": {"count": 200, "median_ms": p90 * 0.9, "p90_ms": p90},
            "throughput_ips": 1000 / p90,
        }

    doc = {
        "schema": "edgecv.results/1",
        "target": {"path": str(run_folder), "kind": "run-folder"},
        "settings": {"scenario": "single-stream"},
        "machine": {"cpu": "AMD EPYC", "arch": "x86_64"},
        "versions": {},
        "results": [row("onnx-fp32", "model.onnx", 10.0), row("onnx-int8", "model.int8.onnx", 25.0)],
        "skipped": [],
    }
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "results.json").write_text(json.dumps(doc))
    return tmp_path / "cpu" / "results.json"


def test_board_results_line_up_with_the_cpu_run(run_folder, bundle, tmp_path):
    """build_engine.sh and benchmark.sh on a (fake) board, then `edgecv report cpu board`."""
    bin_dir = write_tools(tmp_path / "bin", with_edgecv=True)
    env = env_for(bin_dir, tmp_path / "calls.jsonl", "10.3.0")
    for script in ("build_engine.sh", "benchmark.sh"):
        proc = subprocess.run(["bash", str(bundle / script)], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr + proc.stdout
    board = bundle / "results" / "results.json"
    comparison = compare_files([_cpu_results(run_folder, tmp_path), board])
    rows = {tuple(r["artifacts"]): r for r in comparison["rows"]}
    int8 = rows[("onnx-int8", "tensorrt-int8 [GPU only, CUDA graph]")]
    assert int8["matched_by"] == "source ONNX sha256" and int8["source_onnx"] == "model.int8.onnx"
    assert int8["statistic"] == "p90" and int8["speedups"] == pytest.approx([1.0, 25.0 / 2.5])
    assert ("onnx-fp32", "tensorrt-fp16 [with transfers]") in rows
    assert ("onnx-int8", "tensorrt-int8 [with transfers]") in rows


def test_logs_imported_at_home_line_up_with_the_cpu_run(run_folder, bundle, tmp_path):
    shutil.rmtree(bundle / "engines", ignore_errors=True)
    log = _engine_log(tmp_path, Path("/board/bundle/engines/model.int8.engine"))
    made = run_cli("import-trtexec", log, "--bundle", bundle, "--out", tmp_path / "jetson.json")
    assert made.returncode == 0, made.stderr
    assert "built from model.int8.onnx" in made.stdout
    proc = run_cli("report", _cpu_results(run_folder, tmp_path), tmp_path / "jetson.json", "--json")
    assert proc.returncode == 0, proc.stderr
    (row,) = [r for r in json.loads(proc.stdout)["rows"] if r["artifacts"][1]]
    assert row["artifacts"] == ["onnx-int8", "tensorrt-int8 [GPU only, CUDA graph]"]
    assert row["speedups"][1] == pytest.approx(25.0 / 0.840088)


def test_logs_inside_a_bundle_use_it_unasked(bundle, tmp_path):
    text = _engine_log(tmp_path, Path("/board/bundle/engines/model.int8.engine")).read_text()
    (bundle / "results").mkdir()
    (bundle / "results" / "trtexec_model.int8_gpu.log").write_text(text)
    (result,) = import_logs([bundle / "results" / "trtexec_model.int8_gpu.log"])["results"]
    assert result["source_sha256"] == sha256_file(bundle / "model.int8.onnx")
