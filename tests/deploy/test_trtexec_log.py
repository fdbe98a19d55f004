"""``edgecv import-trtexec``: logs in the format trtexec prints (TensorRT 8.6, 10.3 on Orin, 11.1)
become an ``edgecv.results/1`` file that ``edgecv report`` compares with a CPU run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecv.deploy.trtexec_log import import_logs, parse_trtexec_log
from edgecv.report.schema import validate_results
from tests.conftest import assert_user_error, run_cli

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
    doc = import_logs(sorted(FIXTURES.glob("trtexec_1*.log")) + [FIXTURES / "trtexec_8.6_x86.log"])
    validate_results(doc)
    by = {r["artifact"]: r for r in doc["results"]}
    orin = by["tensorrt-int8 [GPU only, CUDA graph]"]  # 10.3: --useCudaGraph --noDataTransfers
    assert orin["batch"] == 4 and orin["throughput_ips"] == pytest.approx(1198.4 * 4)
    assert orin["device"] == "Orin" and orin["latency"]["count"] == 3598
    assert orin["trtexec"]["h2d"]["median_ms"] == 0
    assert "tensorrt-fp16 [with transfers]" in by  # 11.1 asked for --includeDataTransfers --noCudaGraph
    assert doc["versions"]["tensorrt"] == "10.3.0" and doc["machine"]["compute_capability"] == "8.7"


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
