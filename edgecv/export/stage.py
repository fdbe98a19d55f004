"""What an export stage is: the :class:`Stage` interface, the registry and its dependency order, and
what every stage does with an artifact it writes (verify it against PyTorch, stamp its metadata).

A stage declares what determines its result (``key``), which files it writes (``outputs``), which
artifacts those are (``artifacts``, rows of :data:`edgecv.runfolder.ARTIFACT_KINDS`) and the type of
its result (:mod:`edgecv.export.results`). The pipeline skips a stage whose key and files match the
manifest of an earlier run. An artifact's metadata is stamped into its temporary file before the
rename (:func:`stamped`), so each file is written and hashed once.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from edgecv.errors import VerificationError
from edgecv.runfolder import ONNX, TMP_MARK, ArtifactRecord, artifact_kind

from .results import StageResult

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import ExportContext


class Stage:
    name: ClassVar[str]
    title: ClassVar[str]
    after: ClassVar[tuple[str, ...]] = ()
    result: ClassVar[type[StageResult]] = StageResult

    def enabled(self, ctx: "ExportContext") -> bool:
        return True

    def key(self, ctx: "ExportContext") -> dict[str, Any]:
        return {}

    def outputs(self, ctx: "ExportContext") -> list[str]:
        return []

    def caches(self, ctx: "ExportContext") -> list[str]:
        """Files the stage may keep between runs, outside its key (each vouches for itself), which a
        rebuild of the stage reuses: they stay while the stage is enabled."""
        return []

    def run(self, ctx: "ExportContext") -> StageResult:
        raise NotImplementedError

    def artifacts(self, ctx: "ExportContext", result: StageResult) -> list[ArtifactRecord]:
        return []


STAGES: list[Stage] = []


def register_stage(cls: type[Stage]) -> type[Stage]:
    STAGES.append(cls())
    return cls


def ordered_stages(stages: list[Stage] | None = None) -> list[Stage]:
    """Stages in an order that runs each after everything it names in ``after`` (graphlib), so a
    new stage class may be defined anywhere in this module. Ties keep registration order."""
    from graphlib import CycleError, TopologicalSorter

    stages = STAGES if stages is None else stages
    by_name = {s.name: s for s in stages}
    unknown = {(s.name, a) for s in stages for a in s.after if a not in by_name}
    if unknown:
        raise RuntimeError(f"stages depend on stages that do not exist: {sorted(unknown)}")
    sorter = TopologicalSorter({s.name: s.after for s in stages})
    try:
        sorter.prepare()
    except CycleError as exc:
        raise RuntimeError(f"export stages depend on each other in a cycle: {exc.args[1]}") from None
    position = {s.name: i for i, s in enumerate(stages)}
    order: list[Stage] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order += [by_name[name] for name in ready]
        sorter.done(*ready)
    return order


def verify_or_fail(
    ctx: "ExportContext", stage: str, artifact: str, backend: str, precision: str, run_precision: str | None = None
):
    """Run ``artifact`` on the verification inputs and compare with PyTorch; raise on failure."""
    from edgecv.runtime import load

    from .verify import DECODED_BOXES, decoded_outputs, nms_settings, run_all, verify_outputs

    inputs = ctx.verification_inputs()
    with load(ctx.run_dir / artifact, backend=backend, precision=run_precision) as rt:
        actual = run_all(rt.infer, inputs.batches)
        ran = getattr(rt, "precision", None) or precision
    if DECODED_BOXES in ctx.reference_outputs()[0]:
        exposed = decoded_outputs(
            ctx.run_dir / artifact, backend, inputs.batches, onnx_path=ctx.run_dir / ONNX, precision=run_precision
        )
        for got, extra in zip(actual, exposed or []):
            got.update(extra)
    result = verify_outputs(
        artifact,
        backend,
        precision,
        ctx.reference_outputs(),
        actual,
        inputs=inputs.description,
        atol=ctx.options.atol if precision == "fp32" else None,
        rtol=ctx.options.rtol if precision == "fp32" else None,
        classification=ctx.spec.task == "classification",
        nms=nms_settings(ctx.model_info),
        background=ctx.model_info.get("background_class"),
    )
    summary = result.to_dict()
    summary["ran_precision"] = ran
    if not result.passed:
        detail = "; ".join(o.summary() for o in result.failures())
        label = artifact.replace(f"{TMP_MARK}{os.getpid()}-", "")
        raise VerificationError(stage, f"{label} ({backend}) differs from PyTorch: {detail}", summary)
    return summary


def stamped(ctx: "ExportContext", artifact: str, target_cpu: str = ""):
    """The ``finish`` of :func:`atomic_path` that writes an artifact's metadata (task, input spec,
    model record, precision) into it, so a file copied out of the run folder still knows how to be
    fed and read."""
    from edgecv.artifact_metadata import build_metadata, stamp_unfinished
    from edgecv.version import __version__

    kind = artifact_kind(artifact)
    meta = build_metadata(
        ctx.spec,
        model=ctx.model_info,
        precision=kind.precision,
        intended_for=kind.intended_for,
        version=__version__,
        target_cpu=target_cpu,
    )
    return lambda tmp: stamp_unfinished(tmp, meta)


def shape_of(ctx: "ExportContext") -> dict[str, Any]:
    """The batch fields of every artifact record of this export."""
    return {"dynamic_batch": ctx.options.dynamic_batch, "batch": ctx.options.batch}


def float_scopes_of(ctx: "ExportContext") -> tuple[str, ...]:
    """Module paths a detector keeps in float in INT8 (decode, NMS, YOLO's prediction convs)."""
    scopes = ctx.model_info.get("float_scopes")
    if scopes is None and ctx.spec.task == "detection":
        scopes = getattr(ctx.model, "float_scopes", ())
    return tuple(scopes or ())
