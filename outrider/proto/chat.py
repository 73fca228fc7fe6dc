"""The chat message, once: what environments emit, the policy renders and the PRM scores.

On the wire it is `outrider.v1.ChatMessage` (proto/outrider/v1/common.proto); inside a
process it is this frozen dataclass, converted only where a message crosses a protobuf
boundary (`to_proto` / `from_proto`). The OpenAI HTTP endpoint keeps its own request
models because they are the OpenAI wire format, and converts to `Message` on entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from outrider.proto.v1 import common_pb2

ROLES = ("system", "user", "assistant", "tool")
"""The roles chat templates know; the policy refuses any other."""


@dataclass(frozen=True)
class Message:
    """One message of a conversation."""

    role: str
    """One of ROLES: "system", "user", "assistant" or "tool"."""
    content: str
    name: str = ""
    """For role "tool": the name of the tool that produced `content`; empty otherwise."""

    def to_proto(self) -> common_pb2.ChatMessage:
        return common_pb2.ChatMessage(role=self.role, content=self.content, name=self.name)

    @classmethod
    def from_proto(cls, message: common_pb2.ChatMessage) -> Message:
        return cls(message.role, message.content, message.name)

    def template_entry(self) -> dict[str, str]:
        """The dict a Hugging Face chat template reads (`name` only when set: templates
        that print every key would otherwise print an empty one)."""
        entry = {"role": self.role, "content": self.content}
        if self.name:
            entry["name"] = self.name
        return entry
