"""The catalog of learner algorithms, as plain data the config can check without torch.

    python -m outrider.config.algorithm_catalog          # regenerate algorithms.json
    python -m outrider.config.algorithm_catalog --check  # exit 1 if it is stale

`outrider/learner/algos` registers every algorithm with its hyper-parameter
dataclass. Config validation must not import torch (configs load in light
processes: CLI, services), so the registries are exported to
`algorithms.json` — {kind: {name: {"params": [...], "requires": [...]}}} — and a
test fails when it no longer matches the registries.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).resolve().parent / "algorithms.json"


def build_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    from outrider.learner.algos import REGISTRIES, param_schema

    catalog: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, registry in REGISTRIES.items():
        catalog[kind] = {
            entry.name: {
                "params": [_jsonable(field) for field in param_schema(entry.params_type)],
                "requires": sorted(getattr(entry, "requires", ()) or ()),
                "doc": (entry.fn.__doc__ or "").strip().splitlines()[0] if entry.fn.__doc__ else "",
            }
            for entry in sorted(registry, key=lambda e: e.name)
        }
    return catalog


def _jsonable(field: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in field.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def render() -> str:
    return json.dumps(build_catalog(), indent=1, sort_keys=True, default=str) + "\n"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.check:
        if not CATALOG_PATH.exists() or CATALOG_PATH.read_text() != render():
            print(f"stale: {CATALOG_PATH} (run `python -m outrider.config.algorithm_catalog`)")
            return 1
        return 0
    CATALOG_PATH.write_text(render())
    print(f"wrote {CATALOG_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
