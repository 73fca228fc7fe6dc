from outrider.proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InfraFailure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INFRA_FAILURE_NONE: _ClassVar[InfraFailure]
    INFRA_FAILURE_ENV_ERROR: _ClassVar[InfraFailure]
    INFRA_FAILURE_ENV_UNAVAILABLE: _ClassVar[InfraFailure]
    INFRA_FAILURE_POLICY_TIMEOUT: _ClassVar[InfraFailure]
    INFRA_FAILURE_REWARD_ERROR: _ClassVar[InfraFailure]
    INFRA_FAILURE_AGENT_FAILED: _ClassVar[InfraFailure]
INFRA_FAILURE_NONE: InfraFailure
INFRA_FAILURE_ENV_ERROR: InfraFailure
INFRA_FAILURE_ENV_UNAVAILABLE: InfraFailure
INFRA_FAILURE_POLICY_TIMEOUT: InfraFailure
INFRA_FAILURE_REWARD_ERROR: InfraFailure
INFRA_FAILURE_AGENT_FAILED: InfraFailure

class Turn(_message.Message):
    __slots__ = ("start", "completion_length", "observation_length", "policy_version", "env_reward", "finish_reason", "sampling", "segments")
    START_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_LENGTH_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_LENGTH_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENV_REWARD_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    start: int
    completion_length: int
    observation_length: int
    policy_version: int
    env_reward: float
    finish_reason: _common_pb2.FinishReason
    sampling: SamplingSupport
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    def __init__(self, start: _Optional[int] = ..., completion_length: _Optional[int] = ..., observation_length: _Optional[int] = ..., policy_version: _Optional[int] = ..., env_reward: _Optional[float] = ..., finish_reason: _Optional[_Union[_common_pb2.FinishReason, str]] = ..., sampling: _Optional[_Union[SamplingSupport, _Mapping]] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("length", "policy_version")
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    length: int
    policy_version: int
    def __init__(self, length: _Optional[int] = ..., policy_version: _Optional[int] = ...) -> None: ...

class RepetitionStop(_message.Message):
    __slots__ = ("turn_index", "ngram", "count")
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    NGRAM_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    turn_index: int
    ngram: _containers.RepeatedScalarFieldContainer[int]
    count: int
    def __init__(self, turn_index: _Optional[int] = ..., ngram: _Optional[_Iterable[int]] = ..., count: _Optional[int] = ...) -> None: ...

class SamplingSupport(_message.Message):
    __slots__ = ("temperature", "top_k", "top_p")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_k: int
    top_p: float
    def __init__(self, temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ...) -> None: ...

class StepReward(_message.Message):
    __slots__ = ("token_index", "score", "reward")
    TOKEN_INDEX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    token_index: int
    score: float
    reward: float
    def __init__(self, token_index: _Optional[int] = ..., score: _Optional[float] = ..., reward: _Optional[float] = ...) -> None: ...

class Trajectory(_message.Message):
    __slots__ = ("trajectory_id", "prompt_length", "token_ids", "logprobs", "loss_mask", "turns", "outcome_reward", "step_rewards", "truncated", "solved", "status", "infra_failure", "repetition", "reward_components")
    TRAJECTORY_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    LOSS_MASK_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_REWARD_FIELD_NUMBER: _ClassVar[int]
    STEP_REWARDS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    SOLVED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INFRA_FAILURE_FIELD_NUMBER: _ClassVar[int]
    REPETITION_FIELD_NUMBER: _ClassVar[int]
    REWARD_COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    trajectory_id: str
    prompt_length: int
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    loss_mask: _containers.RepeatedScalarFieldContainer[bool]
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    outcome_reward: float
    step_rewards: _containers.RepeatedCompositeFieldContainer[StepReward]
    truncated: bool
    solved: bool
    status: _common_pb2.ItemStatus
    infra_failure: InfraFailure
    repetition: RepetitionStop
    reward_components: _containers.RepeatedCompositeFieldContainer[_common_pb2.RewardComponent]
    def __init__(self, trajectory_id: _Optional[str] = ..., prompt_length: _Optional[int] = ..., token_ids: _Optional[_Iterable[int]] = ..., logprobs: _Optional[_Iterable[float]] = ..., loss_mask: _Optional[_Iterable[bool]] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., outcome_reward: _Optional[float] = ..., step_rewards: _Optional[_Iterable[_Union[StepReward, _Mapping]]] = ..., truncated: _Optional[bool] = ..., solved: _Optional[bool] = ..., status: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ..., infra_failure: _Optional[_Union[InfraFailure, str]] = ..., repetition: _Optional[_Union[RepetitionStop, _Mapping]] = ..., reward_components: _Optional[_Iterable[_Union[_common_pb2.RewardComponent, _Mapping]]] = ...) -> None: ...

class TrajectoryGroup(_message.Message):
    __slots__ = ("group_id", "env", "task_id", "trajectories", "policy_version", "created_unix", "producer")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORIES_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    env: str
    task_id: str
    trajectories: _containers.RepeatedCompositeFieldContainer[Trajectory]
    policy_version: int
    created_unix: float
    producer: str
    def __init__(self, group_id: _Optional[str] = ..., env: _Optional[str] = ..., task_id: _Optional[str] = ..., trajectories: _Optional[_Iterable[_Union[Trajectory, _Mapping]]] = ..., policy_version: _Optional[int] = ..., created_unix: _Optional[float] = ..., producer: _Optional[str] = ...) -> None: ...

class PartialGroup(_message.Message):
    __slots__ = ("group_id", "task", "seed", "episodes", "parks", "policy_version", "parked_unix")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    PARKS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARKED_UNIX_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    task: _common_pb2.Task
    seed: int
    episodes: _containers.RepeatedCompositeFieldContainer[PartialEpisode]
    parks: int
    policy_version: int
    parked_unix: float
    def __init__(self, group_id: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.Task, _Mapping]] = ..., seed: _Optional[int] = ..., episodes: _Optional[_Iterable[_Union[PartialEpisode, _Mapping]]] = ..., parks: _Optional[int] = ..., policy_version: _Optional[int] = ..., parked_unix: _Optional[float] = ...) -> None: ...

class PartialEpisode(_message.Message):
    __slots__ = ("index", "messages", "trajectory", "process_scores", "has_process_score", "done", "open")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    PROCESS_SCORES_FIELD_NUMBER: _ClassVar[int]
    HAS_PROCESS_SCORE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    index: int
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    trajectory: Trajectory
    process_scores: _containers.RepeatedScalarFieldContainer[float]
    has_process_score: _containers.RepeatedScalarFieldContainer[bool]
    done: bool
    open: bool
    def __init__(self, index: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., trajectory: _Optional[_Union[Trajectory, _Mapping]] = ..., process_scores: _Optional[_Iterable[float]] = ..., has_process_score: _Optional[_Iterable[bool]] = ..., done: _Optional[bool] = ..., open: _Optional[bool] = ...) -> None: ...
