"""The benchmark results file, ``results.json``: schema ``edgecv.results/1``.

    {
      "schema": "edgecv.results/1", "created": ISO time, "edgecv_version": str,
      "target": {"path", "kind": "run-folder"|"artifact"|"model", "model": manifest model | null},
      "settings": {"warmup", "iterations", "duration", "scenario", "seed", "batches", "threads",
                   "precision_hint", "backends", "isolation", "timer", "percentiles"},
      "machine": edgecv.sysinfo.machine_info() + "openvino_default_precision",
      "versions": edgecv.sysinfo.backend_versions(),
      "results": [BenchResult.to_dict(): artifact, backend, scenario, batch, latency {count, min_ms,
                  mean_ms, median_ms, p90_ms, p95_ms, p99_ms, max_ms, std_ms, outliers, ...},
                  throughput_ips, samples_ms, precision, artifact_precision, load_s,
                  first_infer_ms, memory, size_bytes, fidelity, verification, speedup_vs_torch, ...],
      "skipped": [{"artifact", "reason"}],
      "recommendation": edgecv.report.recommend.recommend(): {"budget", "accuracy_measured_for",
                  "groups": [{batch, scenario, device, threads, basis, pick, alternatives,
                  fp32_fallback}], "int8": [{artifact, at: [per thread count], pays_at, loses_at, note}]}
    }

``settings.threads`` is one count, or a list when the benchmark swept several; each row's
``threads`` then tells its count (rows of one artifact differ by it). Files without a
``recommendation`` get one computed from their rows when read for a report.

A new field is added without changing the version; removing or changing the meaning of one
bumps it, and readers refuse versions they do not know rather than misreading them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecv.errors import ArtifactError
from edgecv.runfolder import COMPARISON_SCHEMA, RESULTS_FILE, RESULTS_SCHEMA

__all__ = ["COMPARISON_SCHEMA", "RESULTS_SCHEMA", "read_results", "validate_results"]

REQUIRED_RESULT_KEYS = ("artifact", "backend", "scenario", "batch", "latency", "throughput_ips")
REQUIRED_LATENCY_KEYS = ("count", "median_ms", "p90_ms")


def validate_results(doc: Any, source: str = "results") -> dict[str, Any]:
    """``doc`` if it is an ``edgecv.results/1`` document, else :class:`ArtifactError` saying why."""
    if not isinstance(doc, dict) or "schema" not in doc:
        raise ArtifactError(f"{source} is not an edgecv results file (no schema field)")
    if doc["schema"] != RESULTS_SCHEMA:
        raise ArtifactError(f"{source} has schema {doc['schema']!r}; this edgecv reads {RESULTS_SCHEMA}")
    if not isinstance(doc.get("results"), list):
        raise ArtifactError(f"{source} has no results list")
    for i, result in enumerate(doc["results"]):
        missing = [k for k in REQUIRED_RESULT_KEYS if k not in result]
        missing += [f"latency.{k}" for k in REQUIRED_LATENCY_KEYS if k not in result.get("latency", {})]
        if missing:
            raise ArtifactError(f"{source}: result {i} lacks {', '.join(missing)}")
    return doc


def read_results(path: str | Path) -> dict[str, Any]:
    """A results document; a folder stands for the ``results.json`` in it (``--report DIR``)."""
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / RESULTS_FILE).is_file():
            raise ArtifactError(
                f"{path} is a folder without a results.json (write one with `edgecv benchmark --report {path}`)"
            )
        path = path / RESULTS_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not readable JSON: {exc}") from None
    return validate_results(doc, str(path))
