"""report.md, report.html and results.json: produced, parseable, escaped, self-contained; and the
comparison of several runs."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from PIL import Image

from edgecv.errors import ArtifactError, OutputPathError
from edgecv.report import RESULTS_SCHEMA, compare_files, read_results, write_comparison, write_report
from edgecv.report.format import COLUMNS
from edgecv.runtime.benchmark import BenchResult


class Page(HTMLParser):
    """Tables (as lists of rows of cell texts), images and every URL-bearing attribute of a page."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.urls, self.scripts = [], [], [], 0
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "script":
            self.scripts += 1
        self.urls += [v for k, v in attrs.items() if k in ("src", "href") and v]

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(html_text: str) -> Page:
    page = Page()
    page.feed(html_text)
    return page


def test_files_written_and_parseable(results_doc, tmp_path):
    written = write_report(results_doc, tmp_path / "report")
    assert set(written) == {"results.json", "report.md", "report.html"}
    doc = read_results(written["results.json"])
    assert doc["schema"] == RESULTS_SCHEMA and doc == results_doc
    restored = [BenchResult.from_dict(r) for r in doc["results"]]
    assert [r.latency.count for r in restored] == [20] * 4


def test_markdown_table(results_doc, tmp_path):
    md = write_report(results_doc, tmp_path)["report.md"].read_text()
    header = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    lines = md.splitlines()
    start = lines.index(header)
    rows = lines[start + 2 : start + 2 + len(results_doc["results"])]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == [r["artifact"] for r in results_doc["results"]]
    int8_row = next(row for row in rows if row.startswith("| onnx-int8-cpu"))
    fidelity = next(r for r in results_doc["results"] if r["artifact"] == "onnx-int8-cpu")["fidelity"]
    assert f"top-1 {100 * fidelity['top1_agreement']:.2f}% · SQNR {fidelity['sqnr_db']:.1f} dB" in int8_row
    assert re.search(r"\| 1\.00× \|", next(row for row in rows if row.startswith("| pytorch")))
    assert results_doc["machine"]["cpu"] in md


def test_html_is_self_contained(results_doc, tmp_path):
    page = parse(write_report(results_doc, tmp_path)["report.html"].read_text())
    main_table = page.tables[0]
    assert main_table[0] == [h for _, h in COLUMNS]
    assert [row[0] for row in main_table[1:]] == [r["artifact"] for r in results_doc["results"]]
    assert len(page.images) == 2 and page.scripts == 0
    assert all(url.startswith("data:image/png;base64,") for url in page.urls)
    for src in page.images:
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.verify()
        assert image.format == "PNG" and min(image.size) > 100


def test_untrusted_text_is_escaped(results_doc, tmp_path):
    doc = copy.deepcopy(results_doc)
    doc["results"][0]["artifact"] = '<script>alert("x")</script> | <img src=http://evil/>'
    doc["target"]["path"] = "</title><script>"
    written = write_report(doc, tmp_path)
    html_text = written["report.html"].read_text()
    assert "<script" not in html_text and "http://evil" not in parse(html_text).urls
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html_text
    md = written["report.md"].read_text()
    assert '&lt;script&gt;alert("x")&lt;/script&gt; \\| &lt;img src=http://evil/&gt;' in md
    assert "<script" not in md and "<img" not in md


def test_bad_results_files(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        read_results(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not readable JSON"):
        read_results(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "edgecv.manifest/1"}))
    with pytest.raises(ArtifactError, match="this edgecv reads edgecv.results/1"):
        read_results(tmp_path / "other.json")
    (tmp_path / "partial.json").write_text(json.dumps({"schema": RESULTS_SCHEMA, "results": [{"artifact": "a"}]}))
    with pytest.raises(ArtifactError, match="result 0 lacks backend"):
        read_results(tmp_path / "partial.json")


def test_report_path_is_a_file(results_doc, tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(OutputPathError, match="not a folder"):
        write_report(results_doc, tmp_path / "taken")


def test_comparison_speaks_benchmarks_language(results_doc, tmp_path):
    """The headline statistic of `edgecv benchmark` (p90), and speed-ups where above 1 is faster."""
    slower = copy.deepcopy(results_doc)
    for r in slower["results"]:
        r["latency"]["p90_ms"] *= 2
    slower["results"] = [r for r in slower["results"] if r["artifact"] != "onnx-int8-cpu"]
    slower["versions"]["openvino"] = "0.0.0"
    for name, doc in (("machine-a", results_doc), ("machine-b", slower)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(doc))
    comparison = compare_files([tmp_path / "machine-a" / "results.json", tmp_path / "machine-b" / "results.json"])
    assert comparison["baseline"] == "machine-a" and comparison["headline"] == "latency"
    rows = {row["artifact"]: row for row in comparison["rows"]}
    assert rows["onnx-fp32"]["statistic"] == "p90"
    assert rows["onnx-fp32"]["speedups"] == pytest.approx([1.0, 0.5])
    assert rows["onnx-int8-cpu"]["speedups"][1] is None
    assert comparison["versions_differing"]["openvino"][1] == "0.0.0"
    written = write_comparison(comparison, tmp_path / "cmp")
    md = written["comparison.md"].read_text()
    assert "| 0.50× |" in md and "p90 ms · machine-b" in md and "above 1: faster than machine-a" in md
    page = parse(written["comparison.html"].read_text())
    assert page.tables[0][0][-1] == "× faster than machine-a · machine-b" and len(page.images) == 1


def _doc(*rows, scenario="single-stream", target="run"):
    return {
        "schema": RESULTS_SCHEMA,
        "target": {"path": target, "kind": "artifact"},
        "settings": {"scenario": scenario},
        "machine": {},
        "versions": {},
        "results": list(rows),
        "skipped": [],
    }


def _row(artifact, median, p90, backend="onnxruntime", **extra):
    return {
        "artifact": artifact,
        "backend": backend,
        "scenario": "single-stream",
        "batch": 1,
        "latency": {"count": 100, "median_ms": median, "p90_ms": p90},
        "throughput_ips": 1000 / median,
        **extra,
    }


def _compare(*docs):
    from edgecv.report.compare import compare_runs

    return compare_runs([(f"run{i}", doc) for i, doc in enumerate(docs)])


def test_a_run_without_p90_compares_that_row_by_median():
    cpu = _doc(_row("onnx-fp32", 8.0, 9.0, source_sha256="a" * 64))
    board = _doc(_row("tensorrt-fp16 [with transfers]", 2.0, None, backend="trtexec", source_sha256="a" * 64))
    comparison = _compare(cpu, board)
    (row,) = comparison["rows"]
    assert row["statistic"] == "median" and row["speedups"] == [1.0, 4.0]
    from edgecv.report.compare import comparison_rows, speedup_note

    _, cells = comparison_rows(comparison)
    assert cells[0]["value0"] == "8.000 (median)" and cells[0]["speedup1"] == "4.00× (median)"
    assert "None" not in str(cells) and "(median)" in speedup_note(comparison)


def test_every_engine_from_one_onnx_gets_its_own_row():
    cpu = _doc(_row("onnx-fp32", 8.0, 10.0, source_sha256="a" * 64), _row("openvino-fp32", 6.0, 7.0))
    board = _doc(
        _row("tensorrt-fp16 [GPU only]", 1.0, 1.25, backend="trtexec", source_sha256="a" * 64),
        _row("tensorrt-fp16 [with transfers]", 1.6, 2.0, backend="trtexec", source_sha256="a" * 64),
    )
    rows = _compare(cpu, board)["rows"]
    assert [r["artifacts"] for r in rows] == [
        ["onnx-fp32", "tensorrt-fp16 [GPU only]"],
        ["onnx-fp32", "tensorrt-fp16 [with transfers]"],
        ["openvino-fp32", None],
    ]
    assert [r["speedups"][1] for r in rows[:2]] == [8.0, 5.0]
    assert {r["matched_by"] for r in rows[:2]} == {"source ONNX sha256"}


def test_a_second_board_fills_the_rows_of_its_namesakes():
    cpu = _doc(_row("onnx-fp32", 8.0, 10.0, source_sha256="a" * 64))
    boards = [
        _doc(*(_row(f"tensorrt-fp16 [{m}]", 1.0, p90, backend="trtexec", source_sha256="a" * 64) for m, p90 in modes))
        for modes in ([("GPU only", 1.0), ("with transfers", 2.0)], [("with transfers", 4.0), ("GPU only", 2.0)])
    ]
    rows = _compare(cpu, *boards)["rows"]
    assert [r["artifacts"][1:] for r in rows] == [
        ["tensorrt-fp16 [GPU only]"] * 2,
        ["tensorrt-fp16 [with transfers]"] * 2,
    ]
    assert [r["speedups"] for r in rows] == [[1.0, 10.0, 5.0], [1.0, 5.0, 2.5]]


def test_without_a_source_sha256_rows_match_by_name():
    cpu = _doc(_row("onnx-int8", 20.0, 25.0))
    board = _doc(_row("tensorrt-int8", 1.0, 1.0, backend="trtexec"))
    rows = _compare(cpu, board)["rows"]
    assert [r["artifacts"] for r in rows] == [["onnx-int8", None], [None, "tensorrt-int8"]]


def test_cpu_rows_take_their_sha256_from_the_run_folder_manifest(tmp_path):
    from edgecv.report.compare import source_sha256

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.int8.onnx").write_bytes(b"onnx")
    manifest = {"schema": "edgecv.manifest/1", "files": {"model.int8.onnx": {"sha256": "b" * 64}}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    doc = {"target": {"path": str(run), "kind": "run-folder"}}
    assert source_sha256({"path": str(run / "model.int8.onnx")}, doc) == "b" * 64
    # Outside a run folder: the file's own hash; an engine without a record: none.
    (tmp_path / "loose.onnx").write_bytes(b"onnx")
    assert source_sha256({"path": str(tmp_path / "loose.onnx")}, {"target": {}}) == hashlib.sha256(b"onnx").hexdigest()
    assert source_sha256({"path": str(tmp_path / "model.engine")}, {"target": {}}) is None


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_html_opens_in_headless_chromium_without_console_errors(results_doc, tmp_path):
    html_path = write_report(results_doc, tmp_path)["report.html"]
    proc = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            html_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Content Security Policy" in line]
    assert console == []
    page = parse(proc.stdout)
    assert len(page.tables[0]) == len(results_doc["results"]) + 1 and len(page.images) == 2


def test_thread_sweeps_compare_count_by_count():
    def sweep(*rows):
        return {**_doc(*rows), "settings": {"scenario": "single-stream", "threads": [1, 4]}}

    before = sweep(_row("onnx-fp32", 8.0, 9.0, threads=1), _row("onnx-fp32", 4.0, 4.5, threads=4))
    # The second run lists its counts the other way round: rows still line up by thread count.
    after = sweep(_row("onnx-fp32", 2.0, 2.25, threads=4), _row("onnx-fp32", 6.0, 6.0, threads=1))
    comparison = _compare(before, after)
    assert [(r["threads"], r["speedups"][1]) for r in comparison["rows"]] == [(1, 1.5), (4, 2.0)]
    assert [r["label"] for r in comparison["rows"]] == ["onnx-fp32 · b1 · 1t", "onnx-fp32 · b1 · 4t"]
    from edgecv.report.compare import comparison_rows

    assert [c["batch"] for c in comparison_rows(comparison)[1]] == ["1 · 1t", "1 · 4t"]
