"""Reading back the dataclass records edgecv writes as JSON (input specs, detection options,
latency figures, artifact records). At the bottom of the package: models, runtime and the run
folder all read such records."""

from __future__ import annotations

from typing import Any


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that are fields of dataclass ``cls``: records written by a newer edgecv
    (with fields this one does not know) still load."""
    names = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    return {k: v for k, v in data.items() if k in names}
