"""One row per zoo model: what it is, what it accepts, and its size at a given α and resolution.

This is what ``edgecv models`` prints. The figures are measured on the built model
(:func:`~edgecv.models.complexity.count_complexity`), never copied from a table; the model is
built without random weights (:func:`~edgecv.models.complexity.structure_only`), which change no
count. A name that stands for options (``mobilenet_v3_small``, ``shufflenet_v2_x0_5``) is sized
with them, through the resolver ``create_model`` and ``export`` use.
"""

from __future__ import annotations

from typing import Any

from edgecv.errors import InvalidOptionError

from .complexity import Complexity, count_complexity, structure_only
from .registry import (
    ModelEntry,
    apply_alias,
    check_resolution,
    check_width_mult,
    create_model,
    get_entry,
    list_models,
    offers_width_mult,
    resolve_options,
)
from .spec import format_resolution


def describe_models(width_mult: float | None = None, resolution: int | None = None) -> list[dict[str, Any]]:
    """Describe every registered model at ``width_mult`` and ``resolution`` (defaults: each model's).

    An invalid value (α ≤ 0, a resolution that is not a multiple of 32) raises
    :class:`~edgecv.errors.InvalidOptionError`. A valid α that a model does not offer (ShuffleNet's
    discrete widths) is not an error for the listing: that row uses the model's default α and says
    so in ``note``.
    """
    if width_mult is not None:
        width_mult = check_width_mult(width_mult)
    if resolution is not None:
        check_resolution(resolution)
    return [describe_model(name, width_mult, resolution) for name in list_models()]


def describe_model(name: str, width_mult: float | None = None, resolution: int | None = None) -> dict[str, Any]:
    """One row of :func:`describe_models`; ``name`` may be an alias that implies options."""
    entry = get_entry(name)
    # An α the name implies is one the model offers; a contradicting one is the resolver's error.
    width_mult, _ = apply_alias(name, width_mult, {})
    notes = []
    if width_mult is not None and not offers_width_mult(entry, width_mult):
        notes.append(f"α={width_mult:g} not offered ({_allowed(entry)}); shown at α={entry.default_width_mult:g}")
        width_mult = None
    if resolution is not None:
        try:
            check_resolution(resolution, entry)
        except InvalidOptionError as exc:
            notes.append(f"{exc}; shown at {format_resolution(entry.default_resolution)}")
            resolution = None
    note = "; ".join(notes) or None
    options = resolve_options(name, width_mult=width_mult, resolution=resolution)
    model, complexity = sized_model(
        entry.name, options.num_classes, options.width_mult, options.resolution, **options.variant
    )
    config = model.model_config
    return {
        "name": entry.name,
        "family": entry.family,
        "task": entry.task,
        "description": entry.description,
        "paper": entry.paper,
        "aliases": list(entry.aliases),
        "width_mult": config["width_mult"],
        "resolution": config["resolution"],
        "input_shape": list(model.input_spec.shape),
        "options": {k: v for k, v in config.items() if k in entry.variant_options},
        "variants": {
            "width_mult": list(entry.width_mults) if entry.width_mults is not None else "any > 0",
            **{k: list(v) for k, v in entry.variant_options.items()},
        },
        "params": complexity.params,
        "macs": complexity.macs,
        # Boxes a detector scores per image before NMS (SSD's default boxes); None for classifiers.
        "default_boxes": getattr(model, "num_anchors", None),
        "note": note,
    }


def sized_model(
    name: str, num_classes: int, width_mult: float, resolution: Any, **variant: Any
) -> tuple[Any, Complexity]:
    """The model's structure (no weights) and its parameter and MAC counts."""
    # Counting needs the structure only: no random weights, no BatchNorm pass over them.
    with structure_only():
        model = create_model(
            name,
            num_classes=num_classes,
            width_mult=width_mult,
            resolution=resolution,
            settle_batchnorm=False,
            **variant,
        )
    return model, count_complexity(model)


def _allowed(entry: ModelEntry) -> str:
    return "/".join(f"{w:g}" for w in entry.width_mults or ())
