from outrider.proto.v1 import common_pb2 as _common_pb2
from outrider.proto.v1 import trajectory_pb2 as _trajectory_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CapturedCall(_message.Message):
    __slots__ = ("prompt_token_ids", "completion_token_ids", "completion_logprobs", "policy_version", "finish_reason", "started_unix", "seconds", "spliced", "reply_content", "reply_tool_call_ids", "message_count", "messages_digest", "sampling", "streamed")
    PROMPT_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    SPLICED_FIELD_NUMBER: _ClassVar[int]
    REPLY_CONTENT_FIELD_NUMBER: _ClassVar[int]
    REPLY_TOOL_CALL_IDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    STREAMED_FIELD_NUMBER: _ClassVar[int]
    prompt_token_ids: _containers.RepeatedScalarFieldContainer[int]
    completion_token_ids: _containers.RepeatedScalarFieldContainer[int]
    completion_logprobs: _containers.RepeatedScalarFieldContainer[float]
    policy_version: int
    finish_reason: _common_pb2.FinishReason
    started_unix: float
    seconds: float
    spliced: bool
    reply_content: str
    reply_tool_call_ids: _containers.RepeatedScalarFieldContainer[str]
    message_count: int
    messages_digest: str
    sampling: _trajectory_pb2.SamplingSupport
    streamed: bool
    def __init__(self, prompt_token_ids: _Optional[_Iterable[int]] = ..., completion_token_ids: _Optional[_Iterable[int]] = ..., completion_logprobs: _Optional[_Iterable[float]] = ..., policy_version: _Optional[int] = ..., finish_reason: _Optional[_Union[_common_pb2.FinishReason, str]] = ..., started_unix: _Optional[float] = ..., seconds: _Optional[float] = ..., spliced: _Optional[bool] = ..., reply_content: _Optional[str] = ..., reply_tool_call_ids: _Optional[_Iterable[str]] = ..., message_count: _Optional[int] = ..., messages_digest: _Optional[str] = ..., sampling: _Optional[_Union[_trajectory_pb2.SamplingSupport, _Mapping]] = ..., streamed: _Optional[bool] = ...) -> None: ...
