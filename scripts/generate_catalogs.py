"""Regenerate what is derived from the registries: the command behind `make catalog`.

    python scripts/generate_catalogs.py          # rewrite the generated files
    python scripts/generate_catalogs.py --check  # exit 1 naming each stale file (a test runs this)

Sources and what is generated from them (docs/development.md, Generated files):

* the learner's registries (`outrider.learner.algos.REGISTRIES`) ->
  `outrider/config/algorithms.json` (names, hyper-parameter schema, required inputs,
  summary: what the config validates against without importing torch), one `Literal`
  per registry in `outrider/config/names.py`, and a `### \\`name\\`` heading in
  docs/algorithms.md for every registered name (a stub under its kind's section when
  missing; a heading naming nothing registered is reported, never deleted);
* the built-in environments (each `Environment` subclass in `envs/builtin/*.py` whose
  `default_spec()` is not None) -> `BuiltinEnvName`, `BUILTIN_ENV_NAMES` and
  `BUILTIN_ENV_ENTRY_POINTS` in `outrider/config/names.py`, and a row of the built-in
  table in docs/environments.md (a stub when missing);
* the services (`outrider.config.run.ServiceName`, the one list) -> the Helm chart's
  values schema and its list of services, by `python -m outrider.config.helm_schema`,
  which this script runs after writing names.py (the schema embeds BuiltinEnvName).

This is a script, not a module of the package: it imports every layer (learner,
environments, config), which no package below the CLI may do.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import math
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ALGORITHMS_JSON = ROOT / "outrider" / "config" / "algorithms.json"
NAMES_PY = ROOT / "outrider" / "config" / "names.py"
ALGORITHMS_MD = ROOT / "docs" / "algorithms.md"
ENVIRONMENTS_MD = ROOT / "docs" / "environments.md"


class CatalogError(RuntimeError):
    """Something the generator cannot fix by itself (it names the file and what to do)."""


def _import_root() -> None:
    # The checkout this script belongs to, ahead of any installed copy: a temporary copy
    # of the repository (tests/unit/repo/test_development_walkthrough.py) generates its own.
    if sys.path[0] != str(ROOT):
        sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- algorithms


def _jsonable(field: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in field.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def build_algorithm_catalog(registries: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """{kind: {name: {"params": [...], "requires": [...], "doc": summary}}}."""
    from outrider.learner.algos import param_schema

    return {
        kind: {
            entry.name: {
                "params": [_jsonable(field) for field in param_schema(entry.params_type)],
                "requires": sorted(entry.requires),
                "doc": entry.summary,
            }
            for entry in sorted(registry, key=lambda e: e.name)
        }
        for kind, registry in registries.items()
    }


def render_algorithm_catalog(catalog: dict) -> str:
    return json.dumps(catalog, indent=1, sort_keys=True, default=str) + "\n"


def literal_name(registry_kind: str) -> str:
    """`Literal` type name of a registry: its kind in CamelCase + Name ("KL estimator" -> KLEstimatorName)."""
    return "".join(word[:1].upper() + word[1:] for word in re.split(r"[\s_-]+", registry_kind) if word) + "Name"


# ---------------------------------------------------------------- environments


def discover_builtin_envs(previous_order: tuple[str, ...]) -> dict[str, str]:
    """name -> entry point of every built-in environment, in `previous_order` first
    (the config's default `builtin_envs` order is kept), new ones appended by name."""
    import outrider.envs.builtin as builtin
    from outrider.envs.interface import Environment

    found: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(builtin.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"{builtin.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, Environment) or inspect.isabstract(cls):
                continue
            spec = cls.default_spec()
            if spec is None:
                continue
            entry_point = f"{module.__name__}:{cls.__name__}"
            where = f"{module.__name__}.{cls.__name__}.default_spec()"
            if spec.python.entry_point != entry_point:
                raise CatalogError(f"{where}: python.entry_point is {spec.python.entry_point!r}, must be {entry_point!r}")
            if spec.name in found:
                raise CatalogError(f"{where}: name {spec.name!r} is already the built-in {found[spec.name]}")
            found[spec.name] = entry_point
    order = [name for name in previous_order if name in found] + sorted(set(found) - set(previous_order))
    return {name: found[name] for name in order}


def _previous_builtin_order() -> tuple[str, ...]:
    """BUILTIN_ENV_NAMES of the checked-in names.py, read without importing it."""
    if not NAMES_PY.exists():
        return ()
    for node in ast.parse(NAMES_PY.read_text()).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "BUILTIN_ENV_NAMES" and node.value is not None:
            return tuple(ast.literal_eval(node.value))
    return ()


# ---------------------------------------------------------------- names.py

_NAMES_HEADER = '''"""Names of registered things as `Literal` types: generated, do not edit.

Written by `make catalog` (scripts/generate_catalogs.py) from the learner's algorithm
registries (`outrider.learner.algos.REGISTRIES`) and the built-in environments
(`envs/builtin/`); tests/unit/repo/test_generated_catalogs.py fails when it is stale.
The config package reads it instead of importing those layers.
"""

from __future__ import annotations

from typing import Any, Literal
'''


def _q(text: str) -> str:
    return json.dumps(text)  # double quotes, as the rest of the code


def _literal(name: str, values: list[str]) -> str:
    one_line = f"{name} = Literal[{', '.join(_q(v) for v in values)}]"
    if len(one_line) <= 100:
        return one_line
    return f"{name} = Literal[\n" + "".join(f"    {_q(v)},\n" for v in values) + "]"


def render_names(registries: dict[str, Any], builtin_envs: dict[str, str]) -> str:
    parts = [_NAMES_HEADER, "# Algorithm registries (the REGISTRIES key in a comment), names sorted."]
    for kind, registry in registries.items():
        parts.append(f"# {kind}\n" + _literal(literal_name(registry.kind), sorted(registry.names())))
    mapping = "".join(f"    {_q(kind)}: {literal_name(registry.kind)},\n" for kind, registry in registries.items())
    parts.append("# REGISTRIES key -> Literal of its names.\nREGISTRY_NAME_TYPES: dict[str, Any] = {\n" + mapping + "}")
    names = list(builtin_envs)
    parts.append(
        "# Built-in environments, in the order the env service registers them by default\n"
        "# (new ones are appended).\n" + _literal("BuiltinEnvName", names)
    )
    parts.append(f"BUILTIN_ENV_NAMES: tuple[str, ...] = ({', '.join(_q(n) for n in names)}{',' if len(names) == 1 else ''})")
    entries = "".join(f"    {_q(name)}: {_q(entry)},\n" for name, entry in builtin_envs.items())
    parts.append("BUILTIN_ENV_ENTRY_POINTS: dict[str, str] = {\n" + entries + "}")
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- docs

_FENCE = re.compile(r"^(```|~~~)")


def _sections(lines: list[str], level: str) -> list[tuple[int, int]]:
    """(start, end) line ranges of the headings of exactly `level` ("## "), fenced code skipped."""
    starts, fenced = [], False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and line.startswith(level):
            starts.append(i)
    return [(start, starts[k + 1] if k + 1 < len(starts) else len(lines)) for k, start in enumerate(starts)]


def _config_line(kind: str, name: str, schema: dict[str, Any]) -> str:
    params = ", ".join(f"`{f['name']}`={f['default']!r}" for f in schema["params"]) or "no parameters"
    needs = f" Needs {', '.join(f'`{r}`' for r in schema['requires'])}." if schema["requires"] else ""
    return f"* Config: `{kind}: {name}`; {params}.{needs}"


def update_algorithms_doc(text: str, catalog: dict[str, dict[str, dict[str, Any]]]) -> str:
    """docs/algorithms.md with a `### \\`name\\`` stub for every registered name it lacks.

    A `## ` section documents the kinds it names in backticks (`## Policy losses
    (\\`policy_loss\\`)`); in a section of one kind, a backticked `### ` heading that names
    nothing registered is an error (prose is never deleted by a generator).
    """
    lines = text.split("\n")
    documented: dict[str, tuple[int, int]] = {}
    problems: list[str] = []
    for start, end in _sections(lines, "## "):
        kinds = [k for k in re.findall(r"`([a-z_]+)`", lines[start]) if k in catalog]
        headings = {m.group(1) for line in lines[start:end] if (m := re.match(r"### `([^`]+)`", line))}
        for kind in kinds:
            documented[kind] = (start, end)
        if len(kinds) == 1:
            problems += [
                f"{ALGORITHMS_MD.name}: '### `{h}`' under '{lines[start]}' names no registered {kinds[0]}: remove it"
                for h in sorted(headings - set(catalog[kinds[0]]))
            ]
    missing_kinds = sorted(set(catalog) - set(documented))
    problems += [f"{ALGORITHMS_MD.name}: no '## ... (`{k}`)' section for the registry {k!r}: add one" for k in missing_kinds]
    if problems:
        raise CatalogError("\n".join(problems))
    # Insert from the bottom up so earlier line numbers stay valid.
    inserts: list[tuple[int, list[str]]] = []
    for kind, (start, end) in documented.items():
        headings = {m.group(1) for line in lines[start:end] if (m := re.match(r"### `([^`]+)`", line))}
        stub: list[str] = []
        for name in sorted(set(catalog[kind]) - headings):
            schema = catalog[kind][name]
            formula = schema["doc"] or "(its docstring has none)"
            stub += [f"### `{name}`", f"* Formula: {formula}", _config_line(kind, name, schema), ""]
        if stub:
            at = end
            while at > start + 1 and (lines[at - 1].strip() in ("", "---")):
                at -= 1
            inserts.append((at, [""] + stub[:-1]))
    for at, stub in sorted(inserts, reverse=True):
        lines[at:at] = stub
    return "\n".join(lines)


def update_environments_doc(text: str, builtin_envs: dict[str, str]) -> str:
    """docs/environments.md with a row of the built-in table for every built-in it lacks."""
    lines = text.split("\n")
    section = next(((s, e) for s, e in _sections(lines, "## ") if lines[s].strip() == "## Built-in environments"), None)
    if section is None:
        raise CatalogError(f"{ENVIRONMENTS_MD.name}: no '## Built-in environments' section")
    start, end = section
    rows = [i for i in range(start, end) if re.match(r"\| `[^`]+` \|", lines[i])]
    if not rows:
        raise CatalogError(f"{ENVIRONMENTS_MD.name}: '## Built-in environments' has no table of `name` rows")
    listed = {re.match(r"\| `([^`]+)` \|", lines[i]).group(1) for i in rows}
    stale = sorted(listed - set(builtin_envs))
    if stale:
        raise CatalogError(
            f"{ENVIRONMENTS_MD.name}: the built-in table lists {', '.join(stale)}, which no envs/builtin module defines: remove the row"
        )
    new_rows = []
    for name in builtin_envs:
        if name not in listed:
            module, _, attribute = builtin_envs[name].partition(":")
            spec = getattr(importlib.import_module(module), attribute).default_spec()
            new_rows.append(f"| `{name}` | {spec.description} | — | {spec.max_turns} | — | — |")
    lines[rows[-1] + 1 : rows[-1] + 1] = new_rows
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def generated() -> dict[Path, str]:
    """Path -> the content it should have."""
    _import_root()
    from outrider.learner.algos import REGISTRIES

    catalog = build_algorithm_catalog(REGISTRIES)
    builtin_envs = discover_builtin_envs(_previous_builtin_order())
    return {
        ALGORITHMS_JSON: render_algorithm_catalog(catalog),
        NAMES_PY: render_names(REGISTRIES, builtin_envs),
        ALGORITHMS_MD: update_algorithms_doc(ALGORITHMS_MD.read_text(), catalog),
        ENVIRONMENTS_MD: update_environments_doc(ENVIRONMENTS_MD.read_text(), builtin_envs),
    }


def stale_files() -> list[Path]:
    """The generated files whose checked-in content differs from what the registries give."""
    return [path for path, content in generated().items() if not path.exists() or path.read_text() != content]


def _helm_schema(check: bool) -> int:
    # A fresh interpreter: this one has imported the names.py that may just have been rewritten.
    command = [sys.executable, "-m", "outrider.config.helm_schema"] + (["--check"] if check else [])
    return subprocess.run(command, cwd=ROOT).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    parser.add_argument("--no-helm", action="store_true", help="skip the Helm values schema and service list")
    args = parser.parse_args(argv)
    try:
        contents = generated()
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = [path for path, content in contents.items() if not path.exists() or path.read_text() != content]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run `make catalog`)")
        helm = 0 if args.no_helm else _helm_schema(check=True)
        return 1 if stale or helm else 0
    for path in stale:
        path.write_text(contents[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0 if args.no_helm else _helm_schema(check=False)


if __name__ == "__main__":
    sys.exit(main())
