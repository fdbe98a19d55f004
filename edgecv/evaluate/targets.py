"""What ``edgecv eval`` scores: the artifacts of a run folder, one artifact, or a zoo model, as
:mod:`edgecv.runtime.targets` resolves them for the benchmark too."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgecv.errors import InvalidOptionError


@dataclass
class EvalItem:
    label: str
    source: Any
    backend: str
    record: dict[str, Any] = field(default_factory=dict)
    load_options: dict[str, Any] = field(default_factory=dict)


def plan(
    target: str | Path,
    *,
    weights: str | Path | None = None,
    backends: Sequence[str] | None = None,
    zoo_options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None, Path | None, list[EvalItem], list[dict[str, str]]]:
    """(target description, manifest, run folder, items, skipped)."""
    from edgecv.runtime.registry import is_installed
    from edgecv.runtime.targets import resolve_target, wanted_backends

    wanted = wanted_backends(backends)
    path = Path(target).expanduser()
    if weights is not None and (path.exists() or "/" in str(target)):
        raise InvalidOptionError(
            "--weights goes with a zoo model name; an artifact or run folder carries its own weights"
        )
    resolved = resolve_target(target, wanted)
    skipped = resolved.skipped
    if resolved.kind == "run-folder":
        items = []
        for a in resolved.artifacts:
            if not is_installed(a.backend):
                skipped.append({"artifact": a.label, "reason": f"{a.backend} is not installed"})
                continue
            items.append(EvalItem(a.label, a.source, a.backend, a.record, _load_options(a.record)))
        if not items:
            raise InvalidOptionError(
                f"nothing to evaluate in {path}" + (f" for backend {', '.join(sorted(wanted))}" if wanted else "")
            )
        described = {"path": str(path), "kind": "run-folder", "model": resolved.model}
        return described, resolved.manifest, path, items, skipped
    if resolved.kind == "artifact":
        [a] = resolved.artifacts
        item = EvalItem(a.label, a.source, a.backend, a.record, _load_options(a.record, a.backend))
        described = {"path": str(path), "kind": "artifact", "model": resolved.model}
        return described, resolved.manifest, resolved.run_dir, [item], skipped
    options = {k: v for k, v in (zoo_options or {}).items() if v is not None}
    if weights is not None:
        wpath = Path(weights).expanduser()
        if not wpath.is_file():
            from edgecv.errors import WeightsError

            raise WeightsError(
                f"weights file {wpath} does not exist" if not wpath.exists() else f"weights path {wpath} is not a file"
            )
        options["weights"] = str(wpath)
    item = EvalItem(f"pytorch ({target})", str(target), "torch", {"precision": "fp32"}, options)
    return (
        {"path": str(target), "kind": "model", "model": {"name": str(target), **options}},
        None,
        None,
        [item],
        skipped,
    )


def _load_options(record: dict[str, Any], backend: str | None = None) -> dict[str, Any]:
    """An artifact labelled FP32 (or FP16-compressed weights) is scored computing in f32: OpenVINO
    would run bf16 on CPUs with AMX or AVX-512 BF16, and the accuracy of "fp32" must be FP32's."""
    if (backend or record.get("backend")) == "openvino" and record.get("precision") in ("fp32", "fp16"):
        return {"precision": "f32"}
    return {}
