"""Issue 12: the chat message exists once (outrider.proto.chat.Message); every component
that holds chat messages in Python uses that class, and only the protobuf boundary converts."""

from __future__ import annotations

import ast
from pathlib import Path

from outrider.proto.chat import Message
from outrider.proto.v1 import common_pb2

REPO = Path(__file__).resolve().parents[3]
SOURCE_ROOTS = ("outrider", "services", "envs", "learner")


def _classes_named_like_a_chat_message() -> list[str]:
    found = []
    for root in SOURCE_ROOTS:
        for path in (REPO / root).rglob("*.py"):
            if path.is_symlink() or "proto/v1" in path.as_posix():
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef) and node.name in ("Message", "ChatMessage"):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    return sorted(found)


def test_the_chat_message_is_defined_once_outside_the_openai_wire_models():
    # The OpenAI endpoint's pydantic ChatMessage is the OpenAI wire format (like the proto);
    # it converts to Message on entry. Nothing else may define its own.
    wire_models = ("services/policy/openai_http.py", "services/policy/openai_schema.py")
    found = [entry for entry in _classes_named_like_a_chat_message() if not entry.startswith(wire_models)]
    assert [entry.split(":")[0] for entry in found] == ["outrider/proto/chat.py"], found


def test_every_component_uses_the_same_class():
    from outrider.envs import Message as EnvMessage
    from outrider.services.policy import prompts
    from outrider.services.reward.prm import segmentation

    assert EnvMessage is Message
    assert prompts.Message is Message
    assert segmentation.Message is Message


def test_protobuf_round_trip_keeps_role_content_and_tool_name():
    message = Message("tool", "stdout: 42\n", name="python")
    wire = message.to_proto()
    assert (wire.role, wire.content, wire.name) == ("tool", "stdout: 42\n", "python")
    decoded = common_pb2.ChatMessage.FromString(wire.SerializeToString())
    assert Message.from_proto(decoded) == message


def test_template_entry_omits_an_empty_name():
    assert Message("user", "hi").template_entry() == {"role": "user", "content": "hi"}
    assert Message("tool", "3", name="calc").template_entry() == {"role": "tool", "content": "3", "name": "calc"}
