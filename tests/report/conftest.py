from __future__ import annotations

import json

import pytest

from edgecv.runtime.benchmark import benchmark_target
from tests.runtime.fake_run import make_run_folder


@pytest.fixture(scope="session")
def results_doc(tmp_path_factory):
    """A real results document: every artifact of a small run folder (with an INT8 one), in-process."""
    run = make_run_folder(tmp_path_factory.mktemp("report-run"), int8=True)
    report = benchmark_target(run, warmup=1, iterations=20, isolate=False)
    return json.loads(json.dumps(report.to_dict()))
