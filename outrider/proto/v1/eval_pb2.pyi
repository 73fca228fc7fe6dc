from outrider.proto.v1 import common_pb2 as _common_pb2
from outrider.proto.v1 import trajectory_pb2 as _trajectory_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvalTaskRequest(_message.Message):
    __slots__ = ("checkpoint", "task", "policy_address", "samples", "chunk", "seed", "max_solutions", "max_entropy_tokens", "activity_log", "search")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    POLICY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_SOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTROPY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_LOG_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    checkpoint: str
    task: _common_pb2.Task
    policy_address: str
    samples: int
    chunk: int
    seed: int
    max_solutions: int
    max_entropy_tokens: int
    activity_log: str
    search: str
    def __init__(self, checkpoint: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.Task, _Mapping]] = ..., policy_address: _Optional[str] = ..., samples: _Optional[int] = ..., chunk: _Optional[int] = ..., seed: _Optional[int] = ..., max_solutions: _Optional[int] = ..., max_entropy_tokens: _Optional[int] = ..., activity_log: _Optional[str] = ..., search: _Optional[str] = ...) -> None: ...

class TaskSamples(_message.Message):
    __slots__ = ("checkpoint", "task_id", "env", "samples", "correct", "first_try", "errors", "solutions", "entropies", "entropy_error", "error_messages", "seconds", "generated_tokens")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    FIRST_TRY_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    SOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    ENTROPIES_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    checkpoint: str
    task_id: str
    env: str
    samples: int
    correct: int
    first_try: int
    errors: int
    solutions: _containers.RepeatedCompositeFieldContainer[_trajectory_pb2.Trajectory]
    entropies: _containers.RepeatedScalarFieldContainer[float]
    entropy_error: str
    error_messages: _containers.RepeatedScalarFieldContainer[str]
    seconds: float
    generated_tokens: int
    def __init__(self, checkpoint: _Optional[str] = ..., task_id: _Optional[str] = ..., env: _Optional[str] = ..., samples: _Optional[int] = ..., correct: _Optional[int] = ..., first_try: _Optional[int] = ..., errors: _Optional[int] = ..., solutions: _Optional[_Iterable[_Union[_trajectory_pb2.Trajectory, _Mapping]]] = ..., entropies: _Optional[_Iterable[float]] = ..., entropy_error: _Optional[str] = ..., error_messages: _Optional[_Iterable[str]] = ..., seconds: _Optional[float] = ..., generated_tokens: _Optional[int] = ...) -> None: ...
