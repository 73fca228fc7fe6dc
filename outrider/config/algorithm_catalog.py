"""The catalog of learner algorithms, as plain data the config can check without torch.

`outrider.learner.algos` registers every algorithm with its hyper-parameter
dataclass. Config validation must not import torch (configs load in light
processes: CLI, services), and the config package sits below the learner, so it
never imports it: `make catalog` (scripts/generate_catalogs.py) exports the
registries to `algorithms.json` — {kind: {name: {"params": [...], "requires": [...],
"doc": summary}}} — and tests/unit/repo/test_generated_catalogs.py fails when the
checked-in file no longer matches the registries.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).resolve().parent / "algorithms.json"


@cache
def load_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    return json.loads(CATALOG_PATH.read_text())


def names(kind: str) -> list[str]:
    return sorted(load_catalog()[kind])


_PYTHON_TYPES = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}
_BOUNDS = (
    ("ge", lambda v, b: v >= b, ">="),
    ("gt", lambda v, b: v > b, ">"),
    ("le", lambda v, b: v <= b, "<="),
    ("lt", lambda v, b: v < b, "<"),
)


def _check_value(name: str, field: dict[str, Any], value: Any) -> None:
    where = f"{name}.{field['name']}"
    allowed = [t.strip() for t in field["type"].split("|")]
    if value is None:
        if "None" not in allowed:
            raise ValueError(f"{where}: may not be null")
        return
    python_types = tuple(t for a in allowed for t in _PYTHON_TYPES.get(a, ()))
    # bool is an int in Python: accept it only where bool is the declared type.
    wrong_bool = isinstance(value, bool) and "bool" not in allowed
    if python_types and (not isinstance(value, python_types) or wrong_bool):
        raise ValueError(f"{where}: expected {field['type']}, got {value!r}")
    if "choices" in field and value not in field["choices"]:
        raise ValueError(f"{where}: must be one of {field['choices']}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for bound, ok, symbol in _BOUNDS:
            if bound in field and not ok(value, float(field[bound])):
                raise ValueError(f"{where}={value!r} must be {symbol} {field[bound]}")


def check_params(kind: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate `params` of algorithm `name` of `kind`; raise ValueError naming the problem."""
    catalog = load_catalog()[kind]
    if name not in catalog:
        raise ValueError(f"unknown {kind.replace('_', ' ')} {name!r}; valid: {', '.join(sorted(catalog))}")
    fields = {field["name"]: field for field in catalog[name]["params"]}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        valid = ", ".join(fields) or "none"
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)}; valid: {valid}")
    for key, value in params.items():
        _check_value(name, fields[key], value)
    return params


def requires(kind: str, name: str) -> list[str]:
    return load_catalog()[kind][name]["requires"]
