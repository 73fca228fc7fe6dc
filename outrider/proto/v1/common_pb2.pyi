from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_STOP: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_ABORT: _ClassVar[FinishReason]

class SandboxLimit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SANDBOX_LIMIT_NONE: _ClassVar[SandboxLimit]
    SANDBOX_LIMIT_WALL_TIME: _ClassVar[SandboxLimit]
    SANDBOX_LIMIT_CPU_TIME: _ClassVar[SandboxLimit]
    SANDBOX_LIMIT_MEMORY: _ClassVar[SandboxLimit]
    SANDBOX_LIMIT_PROCESSES: _ClassVar[SandboxLimit]
    SANDBOX_LIMIT_OUTPUT: _ClassVar[SandboxLimit]
    SANDBOX_LIMIT_FILE_SIZE: _ClassVar[SandboxLimit]
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_ABORT: FinishReason
SANDBOX_LIMIT_NONE: SandboxLimit
SANDBOX_LIMIT_WALL_TIME: SandboxLimit
SANDBOX_LIMIT_CPU_TIME: SandboxLimit
SANDBOX_LIMIT_MEMORY: SandboxLimit
SANDBOX_LIMIT_PROCESSES: SandboxLimit
SANDBOX_LIMIT_OUTPUT: SandboxLimit
SANDBOX_LIMIT_FILE_SIZE: SandboxLimit

class ChatMessage(_message.Message):
    __slots__ = ("role", "content", "name")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    name: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("messages", "add_generation_prompt")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ADD_GENERATION_PROMPT_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    add_generation_prompt: bool
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., add_generation_prompt: _Optional[bool] = ...) -> None: ...

class TokenIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ItemStatus(_message.Message):
    __slots__ = ("code", "message", "source")
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CODE_UNSPECIFIED: _ClassVar[ItemStatus.Code]
        OK: _ClassVar[ItemStatus.Code]
        ERROR: _ClassVar[ItemStatus.Code]
        TIMEOUT: _ClassVar[ItemStatus.Code]
        INVALID_INPUT: _ClassVar[ItemStatus.Code]
    CODE_UNSPECIFIED: ItemStatus.Code
    OK: ItemStatus.Code
    ERROR: ItemStatus.Code
    TIMEOUT: ItemStatus.Code
    INVALID_INPUT: ItemStatus.Code
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    code: ItemStatus.Code
    message: str
    source: str
    def __init__(self, code: _Optional[_Union[ItemStatus.Code, str]] = ..., message: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "env", "split", "difficulty", "preview", "reference")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    env: str
    split: str
    difficulty: float
    preview: str
    reference: str
    def __init__(self, id: _Optional[str] = ..., env: _Optional[str] = ..., split: _Optional[str] = ..., difficulty: _Optional[float] = ..., preview: _Optional[str] = ..., reference: _Optional[str] = ...) -> None: ...

class SandboxLimits(_message.Message):
    __slots__ = ("wall_time_s", "cpu_time_s", "memory_bytes", "max_processes", "max_output_bytes", "max_file_bytes")
    WALL_TIME_S_FIELD_NUMBER: _ClassVar[int]
    CPU_TIME_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    wall_time_s: float
    cpu_time_s: float
    memory_bytes: int
    max_processes: int
    max_output_bytes: int
    max_file_bytes: int
    def __init__(self, wall_time_s: _Optional[float] = ..., cpu_time_s: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., max_processes: _Optional[int] = ..., max_output_bytes: _Optional[int] = ..., max_file_bytes: _Optional[int] = ...) -> None: ...

class SandboxResult(_message.Message):
    __slots__ = ("stdout", "stderr", "exit_code", "duration_s", "limit_hit", "backend", "stdout_truncated", "stderr_truncated")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    LIMIT_HIT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STDOUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    STDERR_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    stdout: str
    stderr: str
    exit_code: int
    duration_s: float
    limit_hit: SandboxLimit
    backend: str
    stdout_truncated: bool
    stderr_truncated: bool
    def __init__(self, stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., exit_code: _Optional[int] = ..., duration_s: _Optional[float] = ..., limit_hit: _Optional[_Union[SandboxLimit, str]] = ..., backend: _Optional[str] = ..., stdout_truncated: _Optional[bool] = ..., stderr_truncated: _Optional[bool] = ...) -> None: ...

class TensorChunk(_message.Message):
    __slots__ = ("name", "shape", "dtype", "offset", "total_bytes", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    offset: int
    total_bytes: int
    data: bytes
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ..., offset: _Optional[int] = ..., total_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class RewardConstraint(_message.Message):
    __slots__ = ("threshold", "at_least")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    AT_LEAST_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    at_least: bool
    def __init__(self, threshold: _Optional[float] = ..., at_least: _Optional[bool] = ...) -> None: ...

class RewardComponent(_message.Message):
    __slots__ = ("name", "value", "weight", "constraint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    weight: float
    constraint: RewardConstraint
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., weight: _Optional[float] = ..., constraint: _Optional[_Union[RewardConstraint, _Mapping]] = ...) -> None: ...
