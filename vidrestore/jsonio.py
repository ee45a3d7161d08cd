"""JSON as strict parsers read it: reports are read by jq, browsers and other languages, none of
which accept the NaN and Infinity that Python's json module writes by default."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float, however deep in lists and dicts, made None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON of ``value``: an undefined figure is null."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
