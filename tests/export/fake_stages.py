"""Stand-ins for the export stages that write small text files in milliseconds: the pipeline's
bookkeeping (reuse, --force, tampering, interruption, stale files, refusals) is tested with these;
the real stages keep a few end-to-end exports of their own.

``FAKE_STAGES`` mirrors the real pipeline's shape: ``export`` → ``simplify`` (keyed by the
tolerances, like the real one) → ``openvino`` (with ``backends`` containing openvino) → ``int8``
(with ``int8``, keeping a calibration cache)."""

from __future__ import annotations

import json
from typing import Any, Callable

from edgecv.export.results import StageResult
from edgecv.export.stages import Stage
from edgecv.runfolder import (
    INT8_ONNX,
    ONNX,
    OV_XML,
    RANGES_FILE,
    RAW_ONNX,
    artifact_kind,
    atomic_path,
    companion_files,
)


class FakeStage(Stage):
    def __init__(
        self,
        name: str,
        *,
        after: tuple[str, ...] = (),
        files: tuple[str, ...] = (),
        artifacts: tuple[str, ...] = (),
        key_options: tuple[str, ...] = (),
        enabled: Callable[[Any], bool] = lambda ctx: True,
        caches: tuple[str, ...] = (),
    ):
        self.name, self.title, self.after = name, f"fake {name}", after
        self.files, self.kinds, self.key_options = files, artifacts, key_options
        self._enabled, self._caches = enabled, caches
        self.runs = 0
        self.fail: BaseException | None = None  # raised once the files are in place
        self.fail_while_writing: BaseException | None = None  # raised with half a file written
        self.after_write: Callable[[], None] | None = None

    def enabled(self, ctx):
        return self._enabled(ctx)

    def key(self, ctx):
        return {o: getattr(ctx.options, o) for o in self.key_options}

    def outputs(self, ctx):
        return list(self.files)

    def caches(self, ctx):
        return list(self._caches)

    def run(self, ctx):
        self.runs += 1
        content = json.dumps({"stage": self.name, "key": self.key(ctx), "weights": ctx.model_info.get("weights")})
        for rel in (*self.files, *self._caches):
            with atomic_path(ctx.run_dir / rel) as tmp:
                tmp.write_text(f"{rel} {content}\n")
                if self.fail_while_writing is not None:
                    tmp.write_text(rel[:3])
                    raise self.fail_while_writing
        if self.after_write is not None:
            self.after_write()
        if self.fail is not None:
            raise self.fail
        return StageResult({"wrote": list(self.files), "warnings": []})

    def artifacts(self, ctx, result):
        return [artifact_kind(k).record(batch=ctx.options.batch) for k in self.kinds]


def fake_stages() -> dict[str, FakeStage]:
    """A fresh set (each counts its runs), by name."""
    stages = [
        FakeStage("export", files=(RAW_ONNX,), key_options=("opset", "weights", "batch")),
        FakeStage("simplify", after=("export",), files=(ONNX,), artifacts=("onnx-fp32",), key_options=("atol", "rtol")),
        FakeStage(
            "openvino",
            after=("simplify",),
            files=(OV_XML, *companion_files(OV_XML)),
            artifacts=("openvino-fp32",),
            enabled=lambda ctx: "openvino" in ctx.options.backends,
        ),
        FakeStage(
            "int8",
            after=("simplify", "openvino"),
            files=(INT8_ONNX,),
            artifacts=("onnx-int8",),
            key_options=("calib_size",),
            enabled=lambda ctx: ctx.options.int8,
            caches=(RANGES_FILE,),
        ),
    ]
    return {s.name: s for s in stages}
