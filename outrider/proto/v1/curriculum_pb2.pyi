from outrider.proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NextTasksRequest(_message.Message):
    __slots__ = ("n", "env", "include_reference")
    N_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    n: int
    env: str
    include_reference: bool
    def __init__(self, n: _Optional[int] = ..., env: _Optional[str] = ..., include_reference: _Optional[bool] = ...) -> None: ...

class NextTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[_common_pb2.Task, _Mapping]]] = ...) -> None: ...

class TaskOutcome(_message.Message):
    __slots__ = ("env", "task_id", "rewards", "policy_version")
    ENV_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    env: str
    task_id: str
    rewards: _containers.RepeatedScalarFieldContainer[float]
    policy_version: int
    def __init__(self, env: _Optional[str] = ..., task_id: _Optional[str] = ..., rewards: _Optional[_Iterable[float]] = ..., policy_version: _Optional[int] = ...) -> None: ...

class ReportOutcomesRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[TaskOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[TaskOutcome, _Mapping]]] = ...) -> None: ...

class ReportOutcomesResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    def __init__(self, accepted: _Optional[int] = ...) -> None: ...

class GetStateRequest(_message.Message):
    __slots__ = ("max_tasks",)
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    max_tasks: int
    def __init__(self, max_tasks: _Optional[int] = ...) -> None: ...

class TaskStats(_message.Message):
    __slots__ = ("env", "task_id", "difficulty", "attempts", "mean_reward", "pass_rate", "last_seen_unix", "weight", "excluded")
    ENV_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MEAN_REWARD_FIELD_NUMBER: _ClassVar[int]
    PASS_RATE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_UNIX_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    env: str
    task_id: str
    difficulty: float
    attempts: int
    mean_reward: float
    pass_rate: float
    last_seen_unix: float
    weight: float
    excluded: bool
    def __init__(self, env: _Optional[str] = ..., task_id: _Optional[str] = ..., difficulty: _Optional[float] = ..., attempts: _Optional[int] = ..., mean_reward: _Optional[float] = ..., pass_rate: _Optional[float] = ..., last_seen_unix: _Optional[float] = ..., weight: _Optional[float] = ..., excluded: _Optional[bool] = ...) -> None: ...

class EnvStats(_message.Message):
    __slots__ = ("env", "tasks", "attempts", "mean_reward", "weight", "level")
    ENV_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MEAN_REWARD_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    env: str
    tasks: int
    attempts: int
    mean_reward: float
    weight: float
    level: float
    def __init__(self, env: _Optional[str] = ..., tasks: _Optional[int] = ..., attempts: _Optional[int] = ..., mean_reward: _Optional[float] = ..., weight: _Optional[float] = ..., level: _Optional[float] = ...) -> None: ...

class CurriculumState(_message.Message):
    __slots__ = ("strategy", "num_tasks", "num_excluded", "total_attempts", "envs", "tasks")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    NUM_TASKS_FIELD_NUMBER: _ClassVar[int]
    NUM_EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ENVS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    num_tasks: int
    num_excluded: int
    total_attempts: int
    envs: _containers.RepeatedCompositeFieldContainer[EnvStats]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskStats]
    def __init__(self, strategy: _Optional[str] = ..., num_tasks: _Optional[int] = ..., num_excluded: _Optional[int] = ..., total_attempts: _Optional[int] = ..., envs: _Optional[_Iterable[_Union[EnvStats, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[TaskStats, _Mapping]]] = ...) -> None: ...
