"""report.md, report.html and results.json: produced, parseable, escaped, self-contained; and the
comparison of several runs."""

from __future__ import annotations

import base64
import copy
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
    assert f"top-1 {fidelity['top1_agreement']:.1%} · SQNR {fidelity['sqnr_db']:.1f} dB" in int8_row
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


def test_comparison_ratios_against_the_first(results_doc, tmp_path):
    slower = copy.deepcopy(results_doc)
    for r in slower["results"]:
        r["latency"]["median_ms"] *= 2
    slower["results"] = [r for r in slower["results"] if r["artifact"] != "onnx-int8-cpu"]
    slower["versions"]["openvino"] = "0.0.0"
    for name, doc in (("machine-a", results_doc), ("machine-b", slower)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(doc))
    comparison = compare_files([tmp_path / "machine-a" / "results.json", tmp_path / "machine-b" / "results.json"])
    assert comparison["baseline"] == "machine-a"
    rows = {row["artifact"]: row for row in comparison["rows"]}
    assert rows["onnx-fp32"]["ratios"] == [1.0, 2.0]
    assert rows["onnx-int8-cpu"]["ratios"][1] is None
    assert comparison["versions_differing"]["openvino"][1] == "0.0.0"
    written = write_comparison(comparison, tmp_path / "cmp")
    assert "| 2.00× |" in written["comparison.md"].read_text()
    page = parse(written["comparison.html"].read_text())
    assert page.tables[0][0][-1] == "ratio · machine-b" and len(page.images) == 1


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
