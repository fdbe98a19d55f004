"""What is exported: a zoo model by name (its options resolved as ``edgecv models`` resolves them,
built once so bad weights fail before anything is written) or the caller's own ``nn.Module``, and
the model record the manifest and every artifact's metadata carry."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import replace
from pathlib import Path

from torch import nn

from edgecv.errors import InvalidOptionError, WeightsError
from edgecv.models.spec import InputSpec
from edgecv.runfolder import sha256_file

from .options import ExportOptions, batch_suffix, default_run_name


def resolve_model(model: str | nn.Module, options: ExportOptions, input_spec: InputSpec | None):
    """Returns (model_info for the manifest, spec, factory building the nn.Module, run name)."""
    if isinstance(model, nn.Module):
        spec = input_spec or getattr(model, "input_spec", None)
        if spec is None:
            raise InvalidOptionError("exporting your own nn.Module needs an input_spec (edgecv.models.InputSpec)")
        if options.batch != 1:
            spec = replace(spec, batch=options.batch)
        from .onnx_export import name_outputs

        spec = name_outputs(model, spec)
        name = getattr(model, "model_name", None) or type(model).__name__.lower()
        info = {
            "name": name,
            "custom": True,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "task": spec.task,
            "random_weights": None,
            "state_sha256": state_hash(model),
        }
        if spec.task == "detection":
            # What eval, predict and the INT8 stage need to read the detector's outputs.
            post = getattr(model, "detection_options", None)
            info["postprocess"] = post.to_dict() if post is not None else None
            info["background_class"] = getattr(model, "background_class", None)
            info["float_scopes"] = list(getattr(model, "float_scopes", ()))
            info["num_classes"] = getattr(model, "num_classes", None)
        run = f"{name}-r{spec.height}x{spec.width}{batch_suffix(options.batch, options.dynamic_batch)}"
        return info, spec, (lambda: model.eval()), run

    from edgecv.models.registry import create_model, resolve_options

    # The resolver `edgecv models` sizes a name with, so both read an alias the same way.
    resolved = resolve_options(
        model,
        num_classes=options.num_classes,
        width_mult=options.width_mult,
        resolution=options.resolution,
        **options.variant,
    )
    entry, width, resolution = resolved.entry, resolved.width_mult, resolved.resolution
    num_classes, variant = resolved.num_classes, resolved.variant
    postprocess = None
    if entry.task == "detection":
        postprocess = options.detection_options()
        if postprocess.nms and options.exporter == "dynamo":
            raise InvalidOptionError(
                "the dynamo exporter cannot export NMS (pytorch issue 141568); use --exporter torchscript "
                "(the default) or --no-nms"
            )
    elif options.detection_flags_set():
        raise InvalidOptionError(
            f"{entry.name} is a {entry.task} model: --conf-thres, --iou-thres, --max-det, --no-nms and "
            "--agnostic-nms apply to detectors only"
        )
    weights = None
    weights_sha = None
    if options.weights is not None:
        wpath = Path(options.weights).expanduser()
        if not wpath.is_file():
            raise WeightsError(
                f"weights file {wpath} does not exist" if not wpath.exists() else f"weights path {wpath} is not a file"
            )
        weights, weights_sha = str(wpath.resolve()), sha256_file(wpath)
    factory = functools.partial(
        create_model,
        entry.name,
        num_classes=num_classes,
        width_mult=width,
        resolution=resolution,
        weights=weights,
        postprocess=postprocess,
        **variant,
    )
    # Build once now: bad weights must fail before anything is written.
    built = factory()
    spec = built.input_spec if options.batch == 1 else replace(built.input_spec, batch=options.batch)
    info = {
        "name": entry.name,
        "task": entry.task,
        "num_classes": num_classes,
        "width_mult": float(width),
        "resolution": built.model_config["resolution"],
        **variant,
        "weights": weights,
        "weights_sha256": weights_sha,
        "random_weights": weights is None,
    }
    if postprocess is not None:
        info["postprocess"] = built.detection_options.to_dict()
        info["background_class"] = built.background_class
        info["float_scopes"] = list(built.float_scopes)
    run = default_run_name(entry.name, float(width), resolution, variant, options.batch, options.dynamic_batch)
    return info, spec, (lambda: built), run


def state_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
