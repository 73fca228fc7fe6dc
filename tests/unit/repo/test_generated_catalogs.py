"""What `make catalog` generates is checked in and current; the lists it replaces have one source.

docs/development.md, Generated files. The generator is scripts/generate_catalogs.py
(a script: it imports every layer); the Helm half is outrider.config.helm_schema,
checked by tests/integration/deploy/test_helm_chart.py.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("generate_catalogs", REPO_ROOT / "scripts" / "generate_catalogs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_current(generator):
    stale = [str(path.relative_to(REPO_ROOT)) for path in generator.stale_files()]
    assert not stale, f"stale: {', '.join(stale)}; run `make catalog`"


def test_literals_and_catalog_list_exactly_the_registered_names():
    from outrider.config import names
    from outrider.config.algorithm_catalog import load_catalog
    from outrider.learner.algos import NAME_TYPES, REGISTRIES

    catalog = load_catalog()
    assert set(catalog) == set(REGISTRIES) == set(NAME_TYPES) == set(names.REGISTRY_NAME_TYPES)
    for kind, registry in REGISTRIES.items():
        assert sorted(catalog[kind]) == sorted(registry.names()), kind
        assert sorted(get_args(NAME_TYPES[kind])) == sorted(registry.names()), kind


def test_builtin_environments_are_the_modules_of_envs_builtin():
    from outrider.config.env import EnvServiceConfig
    from outrider.config.names import BUILTIN_ENV_ENTRY_POINTS, BUILTIN_ENV_NAMES, BuiltinEnvName
    from outrider.envs.builtin import builtin_class

    assert BUILTIN_ENV_NAMES == get_args(BuiltinEnvName) == tuple(BUILTIN_ENV_ENTRY_POINTS)
    assert set(BUILTIN_ENV_NAMES) == {"math", "code", "python-tool", "guess-number", "nim"}
    for name in BUILTIN_ENV_NAMES:
        spec = builtin_class(name).default_spec()
        assert (spec.name, spec.python.entry_point) == (name, BUILTIN_ENV_ENTRY_POINTS[name])
    assert EnvServiceConfig().builtin_envs == list(BUILTIN_ENV_NAMES)


def test_every_service_is_in_the_one_list_with_its_folder_and_config_section():
    from outrider.config import CONFIG_KINDS, SERVICE_CONFIGS, RunConfig
    from outrider.config.run import SERVICE_NAMES, ServiceName
    from outrider.services import SERVICE_MAIN_MODULES

    folders = sorted(p.parent.name for p in (REPO_ROOT / "services").glob("*/main.py"))
    assert sorted(SERVICE_NAMES) == folders, "a services/<name>/main.py without its name in ServiceName, or the reverse"
    assert SERVICE_NAMES == get_args(ServiceName) == tuple(SERVICE_MAIN_MODULES) == tuple(SERVICE_CONFIGS)
    for name in SERVICE_NAMES:
        model = RunConfig.model_fields[name].annotation
        assert SERVICE_CONFIGS[name] is CONFIG_KINDS[name] is model
        assert model().kind == name and "server" in model.model_fields, name
        assert SERVICE_MAIN_MODULES[name] == f"outrider.services.{name}.main"
    template = (REPO_ROOT / "helm" / "outrider" / "templates" / "_services.tpl").read_text()
    assert f'define "outrider.services" -}}}}{" ".join(SERVICE_NAMES)}{{{{- end' in template
    schema = json.loads((REPO_ROOT / "helm" / "outrider" / "values.schema.json").read_text())
    assert set(SERVICE_NAMES) <= set(schema["properties"])


def test_the_config_validates_algorithms_without_importing_the_learner_or_torch():
    # A fresh interpreter: this one has imported the learner already.
    code = (
        "import sys\n"
        "from outrider.config import parse_config\n"
        "cfg = parse_config({'learner': {'algorithm': {'advantage': {'name': 'rloo'}, 'policy_loss': "
        "{'name': 'clip_higher', 'params': {'clip_eps_high': 0.3}}}}, 'env': {'builtin_envs': ['math']}})\n"
        "assert cfg.learner.algorithm.advantage.name == 'rloo'\n"
        "above = ('outrider.learner', 'outrider.envs', 'outrider.services')\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith(above))\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"the config imported {done.stdout.strip()}"
    # That no module of outrider/config imports those layers, not even inside a function, is
    # the `layers` contract of pyproject.toml (tests/unit/repo/test_import_layers.py).

