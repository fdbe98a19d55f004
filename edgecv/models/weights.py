"""Loading and saving zoo weights.

A weights file is a state_dict, or a training checkpoint dict holding one under ``state_dict``,
``model_state_dict`` or ``model``, saved with ``torch.save`` or as ``.safetensors``. Files are
read with ``torch.load(weights_only=True)``: unpickling anything else can run arbitrary code,
so a checkpoint that needs more is refused with an explanation unless ``trust_pickle=True``.

Keys are matched exactly (after stripping the ``module.`` of DataParallel/DDP and the
``_orig_mod.`` of ``torch.compile``). The one tolerated difference is the number of classes:
a checkpoint trained on another label set loads into the backbone and the classification
layer is re-initialised, with a :class:`HeadReinitializedWarning`. Detectors are the exception:
their class layers interleave classes with boxes, so a detector checkpoint for another number of
classes is refused with the count it holds (the model says it through ``classes_in_checkpoint``).
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgecv.errors import InvalidOptionError, OutputPathError, WeightsError

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
LISTED_KEYS = 4  # keys named in a mismatch message before "and N more"


class HeadReinitializedWarning(UserWarning):
    """The checkpoint's classifier had another number of classes; it was re-initialised."""


@dataclass(frozen=True)
class LoadedWeights:
    path: Path
    tensors: int
    reinitialized: tuple[str, ...] = ()


def load_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    num_classes: int | None = None,
    *,
    trust_pickle: bool = False,
) -> LoadedWeights:
    """Load the weights at ``path`` into ``model`` (strictly, but for the classifier head).

    ``num_classes``: the classes wanted; if the model's head has another size it is reset first.
    A checkpoint whose head has a different number of classes than the model fills everything
    else and leaves a freshly initialised head (:class:`HeadReinitializedWarning`).
    Raises :class:`WeightsError` for a missing, unreadable or non-fitting file.
    """
    path = Path(path)
    if path.suffix.lower() == ".weights":
        return _load_darknet(model, path, num_classes)
    state = _strip_wrapper_prefixes(read_state_dict(path, trust_pickle=trust_pickle))
    _refuse_other_class_count(model, state, path)
    if num_classes is not None and getattr(model, "num_classes", num_classes) != num_classes:
        _reset_head(model, num_classes)
    head_keys, checkpoint_classes = _differing_head(model, state)
    state = {k: v for k, v in state.items() if k not in head_keys}
    _check_fit(model, state, path, ignore=head_keys)
    model.load_state_dict(state, strict=not head_keys)
    if head_keys:
        _reset_head(model, model.num_classes)
        warnings.warn(
            f"the checkpoint's classifier has {checkpoint_classes} classes, the model "
            f"{model.num_classes}: loaded everything else and re-initialised "
            f"{', '.join(sorted(head_keys))}; fine-tune it before use",
            HeadReinitializedWarning,
            stacklevel=2,
        )
    return LoadedWeights(path=path, tensors=len(state), reinitialized=tuple(sorted(head_keys)))


def _load_darknet(model: nn.Module, path: Path, num_classes: int | None) -> LoadedWeights:
    """A Darknet ``.weights`` file: values in cfg order, no names, so only a model that knows its
    cfg (``load_darknet_weights``) can take one."""
    loader = getattr(model, "load_darknet_weights", None)
    if loader is None:
        name = getattr(model, "model_name", type(model).__name__)
        raise WeightsError(
            f"{path} is a Darknet .weights file; {name} follows no Darknet cfg "
            "(yolov3-tiny does): load a state_dict or checkpoint instead"
        )
    if num_classes is not None and getattr(model, "num_classes", num_classes) != num_classes:
        raise InvalidOptionError(
            f"the model has {model.num_classes} classes, {num_classes} were asked for; build it with "
            f"num_classes={num_classes} before loading Darknet weights"
        )
    loader(path)
    tensors = sum(len(layer.tensors()) for layer in model.darknet_layers()) if hasattr(model, "darknet_layers") else 0
    return LoadedWeights(path=path, tensors=tensors)


def read_state_dict(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The state_dict stored at ``path`` (unwrapped from a checkpoint dict if need be)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if not path.is_file():
        raise WeightsError(f"weights path is not a file: {path}")
    obj = _read_safetensors(path) if path.suffix == ".safetensors" else _torch_load(path, trust_pickle)
    return _find_state_dict(obj, path)


def save_weights(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model``'s state_dict to ``path`` atomically (``.safetensors`` or ``torch.save``)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"cannot write weights to {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OutputPathError(f"cannot write weights to {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, tmp)
        else:
            torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _torch_load(path: Path, trust_pickle: bool) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except pickle.UnpicklingError as exc:
        needed = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if needed:
            raise WeightsError(
                f"{path} stores Python objects besides tensors (e.g. {needed.group(1)}), and "
                "unpickling them could run arbitrary code; re-save only its state_dict "
                "(torch.save(checkpoint['state_dict'], 'weights.pt')) or, if you trust the file, "
                "load it with trust_pickle=True"
            ) from exc
        raise _not_a_checkpoint(path) from exc
    except Exception as exc:
        # Garbage bytes make the unpickler and the zip reader fail in arbitrary ways
        # (EOFError, KeyError, IndexError, RuntimeError, ...); to the user they are all one thing.
        raise _not_a_checkpoint(path) from exc


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise WeightsError(f"{path} is a .safetensors file; reading it needs `pip install safetensors`") from None
    try:
        return load_file(path, device="cpu")
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (SafetensorError, ValueError) as exc:
        raise _not_a_checkpoint(path) from exc


def _not_a_checkpoint(path: Path) -> WeightsError:
    return WeightsError(f"{path} is not a readable PyTorch checkpoint (corrupt, truncated or another format)")


def _find_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):  # only reachable with trust_pickle
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, Mapping):
                obj = inner
                break
    if (
        isinstance(obj, Mapping)
        and obj
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        return dict(obj)
    if isinstance(obj, Mapping):
        keys = ", ".join(map(str, list(obj)[:LISTED_KEYS])) or "nothing"
        raise WeightsError(
            f"{path} is not a state_dict: it holds {keys}, and no tensors under {'/'.join(STATE_DICT_KEYS)}"
        )
    raise WeightsError(f"{path} is not a state_dict: it holds a {type(obj).__name__}")


def _strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    stripped = {}
    for key, value in state.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        stripped[key] = value
    return stripped


def _differing_head(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[set[str], int | None]:
    """The model's head keys and the checkpoint's class count, if only that count differs."""
    prefixes = tuple(getattr(model, "classifier_keys", ()))
    own = model.state_dict()
    head = {k for k in own if prefixes and k.startswith(prefixes)}
    differs = [k for k in head if k in state and state[k].shape != own[k].shape]
    # Only the class dimension (dim 0) may differ; another input width means another model.
    if differs and all(state[k].dim() == own[k].dim() and state[k].shape[1:] == own[k].shape[1:] for k in differs):
        return head, int(state[differs[0]].shape[0])
    return set(), None


def _refuse_other_class_count(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """WeightsError naming the checkpoint's class count when a detector's differs from the model's."""
    count = getattr(model, "classes_in_checkpoint", None)
    held = count(state) if callable(count) else None
    if held is None or held == getattr(model, "num_classes", held):
        return
    background = " (background included)" if getattr(model, "background_class", None) is not None else ""
    name = getattr(model, "model_name", type(model).__name__)
    raise WeightsError(
        f"{path} holds {held} classes{background}, {name} has {model.num_classes}: pass --num-classes {held} to load it"
    )


def _reset_head(model: nn.Module, num_classes: int) -> None:
    reset = getattr(model, "reset_classifier", None)
    if reset is None:
        raise InvalidOptionError(
            f"{type(model).__name__} has no reset_classifier(); cannot change its number of classes"
        )
    reset(num_classes)


def _check_fit(model: nn.Module, state: dict[str, torch.Tensor], path: Path, ignore: set[str]) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state and k not in ignore]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {_shape(state[k])}, model {_shape(own[k])}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if not (missing or unexpected or mismatched):
        return
    name = getattr(model, "model_name", type(model).__name__)
    if missing and len(unexpected) == len(state):
        raise WeightsError(
            f"weights in {path} do not fit {name}: none of its {len(state)} keys matches "
            f"(checkpoint keys look like {_listed(unexpected)}; model keys like {_listed(missing)}); "
            "is it a checkpoint of another architecture?"
        )
    parts = [
        f"{len(items)} {label} ({_listed(items)})"
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]
    hint = "; was it saved with another width_mult or variant?" if mismatched else ""
    raise WeightsError(f"weights in {path} do not fit {name}: {'; '.join(parts)}{hint}")


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:LISTED_KEYS])
    rest = len(items) - LISTED_KEYS
    return f"{shown} and {rest} more" if rest > 0 else shown


def _shape(t: torch.Tensor) -> str:
    return "×".join(map(str, t.shape)) or "scalar"
