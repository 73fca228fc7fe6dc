"""Name-keyed registries with one call signature per kind, and hyper-parameter dataclasses.

Every algorithm kind (advantage estimator, policy loss, KL estimator, ...) has one
:class:`Registry`. An entry couples a pure function ``fn(inputs, params) -> output``
with the frozen :class:`Params` dataclass that holds its hyper-parameters and the
names of the optional input fields it cannot run without. The learner looks an entry
up by its configured name and calls it; it never branches on the name.

Config generation reads ``entry.params_type`` with :func:`dataclasses.fields`: each
field carries ``metadata["doc"]`` (one line) and optional bounds ``ge``/``gt``/``le``/
``lt`` and ``choices``; :func:`param_schema` renders that as plain data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

__all__ = [
    "Entry",
    "NoParams",
    "Params",
    "Registry",
    "UnknownNameError",
    "param",
    "param_schema",
]


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name; the message lists the valid names.

    Subclasses both KeyError (a failed look-up) and ValueError (a bad config value).
    """

    def __str__(self) -> str:  # KeyError would repr() the message, quoting it.
        return str(self.args[0]) if self.args else ""


def param(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A dataclass field with a one-line doc and optional bounds (checked by :class:`Params`)."""
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Params:
    """Base of all hyper-parameter dataclasses: validates the bounds given by :func:`param`.

    ``None`` is accepted for any field (it means "disabled" where a field allows it).
    """

    def __post_init__(self) -> None:
        name = type(self).__name__
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            if value is None or not meta:
                continue
            checks = (
                ("ge", lambda v, b: v >= b, ">="),
                ("gt", lambda v, b: v > b, ">"),
                ("le", lambda v, b: v <= b, "<="),
                ("lt", lambda v, b: v < b, "<"),
            )
            for key, ok, sym in checks:
                bound = meta.get(key)
                if bound is not None and not ok(value, bound):
                    raise ValueError(f"{name}.{f.name}={value!r} must be {sym} {bound}")
            choices = meta.get("choices")
            if choices is not None and value not in choices:
                raise ValueError(f"{name}.{f.name}={value!r} must be one of {list(choices)}")


@dataclass(frozen=True)
class NoParams(Params):
    """For functions without hyper-parameters."""


FnT = TypeVar("FnT", bound=Callable[..., Any])
ValueT = TypeVar("ValueT")


def lookup(table: dict[str, ValueT], name: str, what: str) -> ValueT:
    """``table[name]`` for a small fixed table (KL placements, distillation placements);
    an unknown name raises UnknownNameError listing the valid ones."""
    try:
        return table[name]
    except KeyError:
        raise UnknownNameError(f"unknown {what} {name!r}; valid names: {', '.join(sorted(table))}") from None



@dataclass(frozen=True)
class Entry(Generic[FnT]):
    """One registered algorithm.

    Attributes:
        kind: the registry's kind, e.g. ``"advantage estimator"``.
        name: the config key.
        fn: the pure function ``fn(inputs, params) -> output``.
        params_type: frozen :class:`Params` subclass; ``params_type()`` gives the defaults.
        requires: names of optional fields of ``inputs`` that must not be ``None``.
    """

    kind: str
    name: str
    fn: FnT
    params_type: type[Params]
    requires: frozenset[str]

    @property
    def summary(self) -> str:
        """First line of the function's docstring."""
        return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""

    def default_params(self) -> Params:
        return self.params_type()

    def make_params(self, **overrides: Any) -> Params:
        """Params with the defaults replaced by ``overrides`` (validated)."""
        return self.params_type(**overrides)

    def check(self, inputs: Any, params: Params) -> None:
        """Raise if ``params`` has the wrong type or a required input field is ``None``."""
        if not isinstance(params, self.params_type):
            raise TypeError(
                f"{self.kind} {self.name!r} takes {self.params_type.__name__}, "
                f"got {type(params).__name__}"
            )
        missing = sorted(r for r in self.requires if getattr(inputs, r, None) is None)
        if missing:
            raise ValueError(
                f"{self.kind} {self.name!r} needs inputs.{', inputs.'.join(missing)}, "
                "which the caller left as None"
            )

    def __call__(self, inputs: Any, params: Params | None = None) -> Any:
        """Validate, then run ``fn(inputs, params)`` (defaults when ``params`` is None)."""
        params = self.default_params() if params is None else params
        self.check(inputs, params)
        return self.fn(inputs, params)


class Registry(Generic[FnT]):
    """Name -> :class:`Entry` for one kind of algorithm, all sharing one signature."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[FnT]] = {}

    def register(
        self,
        name: str,
        *,
        params: type[Params] = NoParams,
        requires: tuple[str, ...] = (),
    ) -> Callable[[FnT], FnT]:
        """Decorator registering ``fn`` under ``name``; the same fn may be registered under
        several names with different ``params`` (presets such as ``dual_clip``)."""
        if not (isinstance(params, type) and issubclass(params, Params)):
            raise TypeError(f"params for {name!r} must be a Params subclass")

        def deco(fn: FnT) -> FnT:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = Entry(self.kind, name, fn, params, frozenset(requires))
            return fn

        return deco

    def get(self, name: str) -> Entry[FnT]:
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries))
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid names: {valid}"
            ) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[FnT]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self._entries)})"


def param_schema(params_type: type[Params]) -> list[dict[str, Any]]:
    """Plain-data description of a Params dataclass: name, type, default, doc, bounds."""
    out = []
    for f in dataclasses.fields(params_type):
        meta = dict(f.metadata)
        out.append(
            {
                "name": f.name,
                "type": f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)),
                "default": f.default,
                "doc": meta.get("doc", ""),
                **{k: meta.get(k) for k in ("ge", "gt", "le", "lt", "choices") if meta.get(k) is not None},
            }
        )
    return out
