"""Hypothesis strategies that build arbitrary protobuf messages from a message Descriptor.

    strategy = messages(policy_pb2.GenerateRequest.DESCRIPTOR, max_repeated=3)
    strategy.example()  # a GenerateRequest with edge values in any field

Every field of every (nested) message is drawn from a strategy of its type that mixes
ordinary values with the edges a server must survive: the bounds of the field's integer
range, -1 and 0, NaN, ±inf and the float32 extremes, empty, long and non-ASCII strings,
arbitrary bytes, and enum numbers the schema does not name (proto3 enums are open: such a
number decodes and reaches the server as an int). Oneofs get at most one member, proto3
`optional` fields are present or absent, maps get a few entries. Sizes stay bounded
(`max_repeated` items per repeated field or map, `max_string` characters outside the one
long-string edge, nesting at most `max_depth` messages deep) so one case stays cheap.

`overrides` maps a field's full name (`outrider.v1.SamplingParams.max_tokens`) to the
strategy for one value of it: a fuzz test uses it to bound a field whose cost grows with
its value (tokens to generate) or to mix in values the server knows (an environment's
name), so that cases get past the first lookup instead of all ending at NOT_FOUND; a key
ending in `[]` (`outrider.v1.EnvSpec.tools[]`) gives a repeated field's whole list. An
overridden field without presence (a plain proto3 scalar, where absent means the default) is
always set from the override; one with presence (`optional`) is still absent half the time.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

F = FieldDescriptor

INT_RANGES: dict[int, tuple[int, int]] = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
"""Protobuf integer type -> the closed range of values it can carry."""

FLOAT32_MAX = 3.4028234663852886e38
EDGE_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, FLOAT32_MAX, -FLOAT32_MAX, float("inf"), float("-inf"), float("nan")]
"""Floats every float or double field also draws: signed zeros, the smallest float32
subnormal, the float32 extremes, infinities and NaN."""

LONG_STRING_CHARS = 20_000
"""Length of the one long-string edge value (well above most servers' per-field limits,
far below gRPC's 4 MiB message limit)."""

EDGE_STRINGS = [
    "",
    " ",
    "\x00",
    "a" * LONG_STRING_CHARS,
    "é" * 1000,
    "😀\u202e\ufeff\u200b",
    "../../../../etc/passwd",
    "\n\n\n",
    "{{ raise }}{% for %}",
    "-1",
    "nan",
    "NaN",
    "1e309",
    "*",
]
"""Strings every string field also draws: empty, NUL, long, multi-byte, bidi/zero-width
characters, a path escape, template syntax, and numbers a server might parse."""


def _edge_ints(low: int, high: int) -> list[int]:
    values = [low, high, 0, 1, -1, 2, low + 1, high - 1, 2**31 - 1, 2**31, 2**32 - 1, 2**53 + 1]
    return sorted({v for v in values if low <= v <= high})


def integers(field_type: int) -> st.SearchStrategy[int]:
    """Any value of the field's range, edges (bounds, 0, ±1, 2^31, 2^53+1) weighted up."""
    low, high = INT_RANGES[field_type]
    return st.one_of(st.sampled_from(_edge_ints(low, high)), st.integers(0, 1000) if low == 0 else st.integers(-1000, 1000), st.integers(low, high))


def floats(width: int) -> st.SearchStrategy[float]:
    """Any float of the width (NaN and ±inf included), edge values weighted up."""
    return st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(width=width, allow_nan=True, allow_infinity=True))


def strings(max_size: int) -> st.SearchStrategy[str]:
    """Short arbitrary Unicode text (valid UTF-8: protobuf refuses surrogates) or an edge string."""
    return st.one_of(st.sampled_from(EDGE_STRINGS), st.text(st.characters(codec="utf-8"), max_size=max_size))


def binaries(max_size: int) -> st.SearchStrategy[bytes]:
    return st.one_of(st.just(b""), st.binary(max_size=max_size), st.just(b"\xff" * 4096))


def enums(enum: EnumDescriptor) -> st.SearchStrategy[int]:
    """A named value, or a number the schema does not name (open proto3 enums keep it)."""
    named = [value.number for value in enum.values]
    return st.one_of(st.sampled_from(named), st.sampled_from([-1, max(named) + 1, 2**31 - 1, -(2**31)]), st.integers(-(2**31), 2**31 - 1))


class _Builder:
    def __init__(
        self, overrides: Mapping[str, st.SearchStrategy], max_depth: int, min_repeated: int, max_repeated: int, max_string: int, oneof_set: bool
    ):
        self.overrides = dict(overrides)
        self.oneof_set = oneof_set
        self.max_depth = max_depth
        self.min_repeated = min_repeated
        self.max_repeated = max_repeated
        self.max_string = max_string
        self._cache: dict[tuple[str, int], st.SearchStrategy] = {}  # building strategies costs more than drawing

    def scalar(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy:
        """The strategy for one value of `field` (one element of a repeated field)."""
        key = (field.full_name, depth)
        if key not in self._cache:
            self._cache[key] = self._scalar(field, depth)
        return self._cache[key]

    def _scalar(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy:
        if field.full_name in self.overrides:
            return self.overrides[field.full_name]
        kind = field.type
        if kind in INT_RANGES:
            return integers(kind)
        if kind == F.TYPE_FLOAT:
            return floats(32)
        if kind == F.TYPE_DOUBLE:
            return floats(64)
        if kind == F.TYPE_BOOL:
            return st.booleans()
        if kind == F.TYPE_STRING:
            return strings(self.max_string)
        if kind == F.TYPE_BYTES:
            return binaries(self.max_string)
        if kind == F.TYPE_ENUM:
            return enums(field.enum_type)
        if kind in (F.TYPE_MESSAGE, F.TYPE_GROUP):
            key = (field.message_type.full_name, depth + 1)
            if key not in self._cache:
                self._cache[key] = self.message(field.message_type, depth + 1)
            return self._cache[key]
        raise TypeError(f"{field.full_name}: unsupported protobuf field type {kind}")

    def message(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
        cls = message_factory.GetMessageClass(descriptor)
        if depth > self.max_depth:
            return st.builds(cls)  # the empty message: still valid, ends the nesting
        plain = [f for f in descriptor.fields if f.containing_oneof is None or f.containing_oneof.name.startswith("_")]
        oneofs = [o for o in descriptor.oneofs if not o.name.startswith("_")]  # "_x": proto3 optional's synthetic oneof

        @st.composite
        def build(draw) -> Message:
            msg = cls()
            for field in plain:
                self._draw_field(draw, msg, field, depth)
            for oneof in oneofs:
                chosen = draw(st.sampled_from(list(oneof.fields) if self.oneof_set else [None, *oneof.fields]))
                if chosen is not None:
                    self._set(msg, chosen, draw(self.scalar(chosen, depth)))
            return msg

        return build()

    def _draw_field(self, draw, msg: Message, field: FieldDescriptor, depth: int) -> None:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            entries = draw(st.dictionaries(self.scalar(key_field, depth), self.scalar(value_field, depth + 1), max_size=self.max_repeated))
            target = getattr(msg, field.name)
            for key, value in entries.items():
                if value_field.message_type is not None:
                    target[key].CopyFrom(value)
                else:
                    target[key] = value
            return
        if field.is_repeated:
            whole = self.overrides.get(field.full_name + "[]")  # an override of the whole list
            values = draw(whole if whole is not None else st.lists(self.scalar(field, depth), min_size=self.min_repeated, max_size=self.max_repeated))
            target = getattr(msg, field.name)
            if field.message_type is not None:
                for value in values:
                    target.add().CopyFrom(value)
            else:
                target.extend(values)
            return
        always = field.full_name in self.overrides and not field.has_presence  # an override's values are the point
        if always or draw(st.booleans()):  # else absent (a plain proto3 scalar: its default) half the time
            self._set(msg, field, draw(self.scalar(field, depth)))

    @staticmethod
    def _set(msg: Message, field: FieldDescriptor, value) -> None:
        if field.message_type is not None:
            getattr(msg, field.name).CopyFrom(value)
        else:
            setattr(msg, field.name, value)


def messages(
    descriptor: Descriptor,
    *,
    overrides: Mapping[str, st.SearchStrategy] | None = None,
    max_depth: int = 4,
    min_repeated: int = 0,
    max_repeated: int = 4,
    max_string: int = 64,
    oneof_set: bool = False,
) -> st.SearchStrategy[Message]:
    """Arbitrary messages of `descriptor`'s type (see the module docstring). `min_repeated=1`
    (every repeated field non-empty) and `oneof_set` (every oneof has a member) with overrides
    of valid values make plausible requests, ones that get past validation to a method's work."""
    return _Builder(overrides or {}, max_depth, min_repeated, max_repeated, max_string, oneof_set).message(descriptor)


def mutated(serialized: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Valid encodings with a few bytes changed, cut or appended: they often still decode,
    into messages a typed strategy would not write (unknown fields, odd lengths)."""

    @st.composite
    def mutate(draw) -> bytes:
        data = bytearray(draw(serialized))
        for _ in range(draw(st.integers(1, 4))):
            action = draw(st.sampled_from(["flip", "cut", "append", "insert"]))
            if action == "flip" and data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
            elif action == "cut" and data:
                del data[draw(st.integers(0, len(data) - 1)) :]
            elif action == "append":
                data += draw(st.binary(min_size=1, max_size=16))
            elif action == "insert":
                at = draw(st.integers(0, len(data)))
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
        return bytes(data)

    return mutate()


def raw_bytes(max_size: int = 512) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes as a request body (most do not decode; some decode to odd messages)."""
    return st.one_of(st.binary(max_size=max_size), st.sampled_from([b"", b"\x00", b"\xff" * 16, b"\x0a\xff\xff\xff\xff\x0f"]))


def mostly(known: st.SearchStrategy | list, other: st.SearchStrategy, odds: int = 3) -> st.SearchStrategy:
    """`known` (a strategy, or values to pick from) `odds` times in `odds + 1`, else `other`:
    an override that gets most cases past a check while the rest still probe it."""
    known = st.sampled_from(known) if isinstance(known, list) else known
    return st.one_of(*[known] * odds, other)
