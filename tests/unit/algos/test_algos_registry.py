"""Registries: names, unknown-name errors, hyper-parameter schemas, docs coverage."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import get_args

import pytest

from outrider.learner.algos import NAME_TYPES, REGISTRIES, UnknownNameError, describe
from outrider.learner.algos.registry import NoParams, Params, Registry, param

DOCS = Path(__file__).resolve().parents[3] / "docs" / "algorithms.md"


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_literal_names_match_registry(kind):
    assert set(get_args(NAME_TYPES[kind])) == set(REGISTRIES[kind].names())


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_unknown_name_lists_valid_names(kind):
    reg = REGISTRIES[kind]
    with pytest.raises(UnknownNameError) as info:
        reg.get("no_such_algorithm")
    message = str(info.value)
    assert "no_such_algorithm" in message
    assert all(name in message for name in reg.names())
    # Catchable both as a failed look-up and as a bad config value.
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_entry_has_documented_frozen_params(kind):
    for entry in REGISTRIES[kind]:
        params = entry.default_params()
        assert dataclasses.is_dataclass(params) and isinstance(params, Params)
        for f in dataclasses.fields(params):
            assert f.metadata.get("doc"), f"{kind}:{entry.name}.{f.name} has no doc"
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(params, f.name, getattr(params, f.name))
        assert entry.summary, f"{kind}:{entry.name} has no docstring"
    json.dumps(describe(), default=str)


def test_params_bounds_and_type_checks():
    @dataclasses.dataclass(frozen=True)
    class P(Params):
        x: float = param(0.5, "a fraction", ge=0.0, le=1.0)
        mode: str = param("a", "a mode", choices=("a", "b"))
        cap: float | None = param(None, "optional cap", gt=1.0)

    assert P(x=1.0, mode="b", cap=2.0).x == 1.0
    with pytest.raises(ValueError, match=r"P\.x=1\.5 must be <= 1\.0"):
        P(x=1.5)
    with pytest.raises(ValueError, match=r"P\.mode='c' must be one of"):
        P(mode="c")
    with pytest.raises(ValueError, match=r"P\.cap=1\.0 must be > 1\.0"):
        P(cap=1.0)

    reg: Registry = Registry("thing")
    reg.register("one", params=P, requires=("extra",))(lambda inputs, params: params.x)

    class Inputs:
        extra = None

    with pytest.raises(ValueError, match=r"thing 'one' needs inputs\.extra"):
        reg.get("one")(Inputs())
    Inputs.extra = 1
    assert reg.get("one")(Inputs()) == 0.5
    with pytest.raises(TypeError, match="takes P"):
        reg.get("one")(Inputs(), NoParams())
    with pytest.raises(ValueError, match="already registered"):
        reg.register("one")(lambda inputs, params: None)


def test_docs_have_one_entry_per_registered_name():
    # Each name appears as a "### `name`" heading in docs/algorithms.md under its registry.
    text = DOCS.read_text(encoding="utf-8")
    headings = set(re.findall(r"^### `([a-z0-9_]+)`", text, flags=re.M))
    for kind, reg in REGISTRIES.items():
        for name in reg.names():
            assert name in headings, f"docs/algorithms.md lacks an entry for {kind} {name!r}"
    for name in ("reward", "loss", "none"):
        assert name in headings
