"""What a precision plan measures for the OpenVINO INT8 IR: OpenVINO's CPU plugin at the target
thread count.

Per-layer costs come from OpenVINO's performance counters (``PERF_COUNT``): each executed layer of
the compiled model is named after the IR operation it was made from, which keeps the ONNX node's
name (``<node>/WithoutBiases`` for a convolution, ``<node>/fq_output_0`` for the FakeQuantize NNCF
put after ``<node>``), so :func:`.blocks.attribute` charges them to ONNX nodes as it does ONNX
Runtime's kernels; layout reorders (``input_abcd_acdb_…``) are left unattributed. Whole models are
timed in interleaved rounds with early stop (:func:`.measure.interleaved_times`).

Every model is compiled with ``INFERENCE_PRECISION_HINT=f32``: OpenVINO computes float layers in
bf16 by default on CPUs with AMX, and the plan weighs INT8 against float32, as the artifact runs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .measure import PROFILE_RUNS, WARMUP_RUNS, WholeGraphTimer


class OpenVinoCosts(WholeGraphTimer):
    """OpenVINO CPU compiled models with ``threads`` inference threads, one stream, latency hint;
    the timing settings as in :class:`~.measure.WholeGraphTimer`."""

    engine = "openvino"
    # OpenVINO computes on its own thread pool: the calling thread's CPU time says nothing, so the
    # clock stays wall time.

    def __init__(self, threads: int, **timing: Any):
        super().__init__(threads, **timing)
        self._compiled: dict[tuple[str, bool], Any] = {}

    def close(self) -> None:
        self._compiled.clear()

    def _request(self, xml: Path, profile: bool = False):
        key = (str(xml), profile)
        if key not in self._compiled:
            import openvino as ov

            config = {
                "INFERENCE_NUM_THREADS": self.threads,
                "INFERENCE_PRECISION_HINT": "f32",
                "PERFORMANCE_HINT": "LATENCY",
                "NUM_STREAMS": 1,
                "PERF_COUNT": profile,
            }
            compiled = ov.Core().compile_model(str(xml), "CPU", config)
            request = compiled.create_infer_request()
            rng = np.random.default_rng(0)
            feed = {
                i: rng.random([d if d > 0 else 1 for d in port.get_partial_shape().get_min_shape()], dtype=np.float32)
                for i, port in enumerate(compiled.inputs)
            }
            self._compiled[key] = (compiled, request, feed)
        _, request, feed = self._compiled[key]
        return request, feed

    def kernel_times(self, model: Path, label: str = "") -> dict[str, float]:
        request, feed = self._request(Path(model), profile=True)
        for _ in range(WARMUP_RUNS):
            request.infer(feed)
        per_run: dict[str, list[float]] = {}
        for run in range(PROFILE_RUNS):
            request.infer(feed)
            for layer in request.get_profiling_info():
                if layer.status != layer.Status.EXECUTED:
                    continue
                times = per_run.setdefault(layer.node_name, [0.0] * PROFILE_RUNS)
                times[run] += layer.real_time.total_seconds() * 1e3
        # Each layer's fastest run: other work on the machine only ever makes a layer slower.
        return {layer: min(times) for layer, times in per_run.items()}

    def graph_times(self, candidates: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        runs = {}
        for name, c in candidates.items():
            request, feed = self._request(Path(c.path))
            runs[name] = functools.partial(request.infer, feed)
        return self._time(runs)
