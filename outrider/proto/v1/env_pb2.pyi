from outrider.proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_OUTCOME_UNSPECIFIED: _ClassVar[AgentOutcome]
    AGENT_OUTCOME_OK: _ClassVar[AgentOutcome]
    AGENT_OUTCOME_FAILED: _ClassVar[AgentOutcome]
    AGENT_OUTCOME_TIMEOUT: _ClassVar[AgentOutcome]
    AGENT_OUTCOME_KILLED: _ClassVar[AgentOutcome]
    AGENT_OUTCOME_INFRA: _ClassVar[AgentOutcome]
AGENT_OUTCOME_UNSPECIFIED: AgentOutcome
AGENT_OUTCOME_OK: AgentOutcome
AGENT_OUTCOME_FAILED: AgentOutcome
AGENT_OUTCOME_TIMEOUT: AgentOutcome
AGENT_OUTCOME_KILLED: AgentOutcome
AGENT_OUTCOME_INFRA: AgentOutcome

class PythonEntryPoint(_message.Message):
    __slots__ = ("entry_point",)
    ENTRY_POINT_FIELD_NUMBER: _ClassVar[int]
    entry_point: str
    def __init__(self, entry_point: _Optional[str] = ...) -> None: ...

class RemoteEndpoint(_message.Message):
    __slots__ = ("address", "timeout_s", "env")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    address: str
    timeout_s: float
    env: str
    def __init__(self, address: _Optional[str] = ..., timeout_s: _Optional[float] = ..., env: _Optional[str] = ...) -> None: ...

class OpenEnvEndpoint(_message.Message):
    __slots__ = ("base_url", "timeout_s", "transport", "action_field", "action_template_json", "observation_field", "instructions", "tasks", "seed_tasks", "null_reward_is_zero", "solved_reward")
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_FIELD_NUMBER: _ClassVar[int]
    ACTION_TEMPLATE_JSON_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    SEED_TASKS_FIELD_NUMBER: _ClassVar[int]
    NULL_REWARD_IS_ZERO_FIELD_NUMBER: _ClassVar[int]
    SOLVED_REWARD_FIELD_NUMBER: _ClassVar[int]
    base_url: str
    timeout_s: float
    transport: str
    action_field: str
    action_template_json: str
    observation_field: str
    instructions: str
    tasks: _containers.RepeatedCompositeFieldContainer[OpenEnvTask]
    seed_tasks: OpenEnvSeedTasks
    null_reward_is_zero: bool
    solved_reward: float
    def __init__(self, base_url: _Optional[str] = ..., timeout_s: _Optional[float] = ..., transport: _Optional[str] = ..., action_field: _Optional[str] = ..., action_template_json: _Optional[str] = ..., observation_field: _Optional[str] = ..., instructions: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[OpenEnvTask, _Mapping]]] = ..., seed_tasks: _Optional[_Union[OpenEnvSeedTasks, _Mapping]] = ..., null_reward_is_zero: _Optional[bool] = ..., solved_reward: _Optional[float] = ...) -> None: ...

class OpenEnvTask(_message.Message):
    __slots__ = ("id", "split", "reset_json", "preview")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    RESET_JSON_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    id: str
    split: str
    reset_json: str
    preview: str
    def __init__(self, id: _Optional[str] = ..., split: _Optional[str] = ..., reset_json: _Optional[str] = ..., preview: _Optional[str] = ...) -> None: ...

class OpenEnvSeedTasks(_message.Message):
    __slots__ = ("train", "test")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    train: int
    test: int
    def __init__(self, train: _Optional[int] = ..., test: _Optional[int] = ...) -> None: ...

class AgentProgram(_message.Message):
    __slots__ = ("command", "directory", "tasks_from", "host_python_packages", "env")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    TASKS_FROM_FIELD_NUMBER: _ClassVar[int]
    HOST_PYTHON_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    command: _containers.RepeatedScalarFieldContainer[str]
    directory: str
    tasks_from: str
    host_python_packages: bool
    env: _containers.ScalarMap[str, str]
    def __init__(self, command: _Optional[_Iterable[str]] = ..., directory: _Optional[str] = ..., tasks_from: _Optional[str] = ..., host_python_packages: _Optional[bool] = ..., env: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ToolSchema(_message.Message):
    __slots__ = ("name", "description", "parameters_json_schema")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters_json_schema: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters_json_schema: _Optional[str] = ...) -> None: ...

class RewardSpec(_message.Message):
    __slots__ = ("verifiers", "process_signals", "max_reward")
    VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    PROCESS_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    MAX_REWARD_FIELD_NUMBER: _ClassVar[int]
    verifiers: _containers.RepeatedCompositeFieldContainer[WeightedVerifier]
    process_signals: bool
    max_reward: float
    def __init__(self, verifiers: _Optional[_Iterable[_Union[WeightedVerifier, _Mapping]]] = ..., process_signals: _Optional[bool] = ..., max_reward: _Optional[float] = ...) -> None: ...

class WeightedVerifier(_message.Message):
    __slots__ = ("name", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    weight: float
    def __init__(self, name: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class EnvSpec(_message.Message):
    __slots__ = ("name", "version", "description", "python", "remote", "openenv", "agent", "tools", "max_turns", "sandbox", "reward", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PYTHON_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    OPENENV_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    python: PythonEntryPoint
    remote: RemoteEndpoint
    openenv: OpenEnvEndpoint
    agent: AgentProgram
    tools: _containers.RepeatedCompositeFieldContainer[ToolSchema]
    max_turns: int
    sandbox: _common_pb2.SandboxLimits
    reward: RewardSpec
    params: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., python: _Optional[_Union[PythonEntryPoint, _Mapping]] = ..., remote: _Optional[_Union[RemoteEndpoint, _Mapping]] = ..., openenv: _Optional[_Union[OpenEnvEndpoint, _Mapping]] = ..., agent: _Optional[_Union[AgentProgram, _Mapping]] = ..., tools: _Optional[_Iterable[_Union[ToolSchema, _Mapping]]] = ..., max_turns: _Optional[int] = ..., sandbox: _Optional[_Union[_common_pb2.SandboxLimits, _Mapping]] = ..., reward: _Optional[_Union[RewardSpec, _Mapping]] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListEnvsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListEnvsResponse(_message.Message):
    __slots__ = ("envs",)
    ENVS_FIELD_NUMBER: _ClassVar[int]
    envs: _containers.RepeatedCompositeFieldContainer[EnvSpec]
    def __init__(self, envs: _Optional[_Iterable[_Union[EnvSpec, _Mapping]]] = ...) -> None: ...

class RegisterEnvRequest(_message.Message):
    __slots__ = ("spec", "replace")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    spec: EnvSpec
    replace: bool
    def __init__(self, spec: _Optional[_Union[EnvSpec, _Mapping]] = ..., replace: _Optional[bool] = ...) -> None: ...

class RegisterEnvResponse(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: EnvSpec
    def __init__(self, spec: _Optional[_Union[EnvSpec, _Mapping]] = ...) -> None: ...

class UnregisterEnvRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnregisterEnvResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("env", "split", "offset", "limit", "include_reference")
    ENV_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    env: str
    split: str
    offset: int
    limit: int
    include_reference: bool
    def __init__(self, env: _Optional[str] = ..., split: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., include_reference: _Optional[bool] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "total")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Task]
    total: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[_common_pb2.Task, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class Observation(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("env", "task_id", "seed")
    ENV_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    env: str
    task_id: str
    seed: int
    def __init__(self, env: _Optional[str] = ..., task_id: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session_id", "observation", "spec", "ttl_s")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    TTL_S_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    observation: Observation
    spec: EnvSpec
    ttl_s: float
    def __init__(self, session_id: _Optional[str] = ..., observation: _Optional[_Union[Observation, _Mapping]] = ..., spec: _Optional[_Union[EnvSpec, _Mapping]] = ..., ttl_s: _Optional[float] = ...) -> None: ...

class Action(_message.Message):
    __slots__ = ("text", "token_ids")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class StepRequest(_message.Message):
    __slots__ = ("session_id", "action")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    action: Action
    def __init__(self, session_id: _Optional[str] = ..., action: _Optional[_Union[Action, _Mapping]] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("name", "arguments", "output", "status", "sandbox")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    name: str
    arguments: str
    output: str
    status: _common_pb2.ItemStatus
    sandbox: _common_pb2.SandboxResult
    def __init__(self, name: _Optional[str] = ..., arguments: _Optional[str] = ..., output: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ..., sandbox: _Optional[_Union[_common_pb2.SandboxResult, _Mapping]] = ...) -> None: ...

class StepInfo(_message.Message):
    __slots__ = ("tool_calls", "process_score", "solved", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    PROCESS_SCORE_FIELD_NUMBER: _ClassVar[int]
    SOLVED_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    process_score: float
    solved: bool
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., process_score: _Optional[float] = ..., solved: _Optional[bool] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class StepResponse(_message.Message):
    __slots__ = ("observation", "reward", "done", "truncated", "status", "info", "turn")
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    observation: Observation
    reward: float
    done: bool
    truncated: bool
    status: _common_pb2.ItemStatus
    info: StepInfo
    turn: int
    def __init__(self, observation: _Optional[_Union[Observation, _Mapping]] = ..., reward: _Optional[float] = ..., done: _Optional[bool] = ..., truncated: _Optional[bool] = ..., status: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ..., info: _Optional[_Union[StepInfo, _Mapping]] = ..., turn: _Optional[int] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("turns", "total_reward", "solved")
    TURNS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REWARD_FIELD_NUMBER: _ClassVar[int]
    SOLVED_FIELD_NUMBER: _ClassVar[int]
    turns: int
    total_reward: float
    solved: bool
    def __init__(self, turns: _Optional[int] = ..., total_reward: _Optional[float] = ..., solved: _Optional[bool] = ...) -> None: ...

class RunAgentRequest(_message.Message):
    __slots__ = ("env", "task_id", "seed", "session_id", "model")
    ENV_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    env: str
    task_id: str
    seed: int
    session_id: str
    model: str
    def __init__(self, env: _Optional[str] = ..., task_id: _Optional[str] = ..., seed: _Optional[int] = ..., session_id: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class RunAgentResponse(_message.Message):
    __slots__ = ("outcome", "message", "output", "reward", "solved", "exit_code", "duration_s", "stderr_tail", "task_messages")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    SOLVED_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    STDERR_TAIL_FIELD_NUMBER: _ClassVar[int]
    TASK_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    outcome: AgentOutcome
    message: str
    output: str
    reward: float
    solved: bool
    exit_code: int
    duration_s: float
    stderr_tail: str
    task_messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    def __init__(self, outcome: _Optional[_Union[AgentOutcome, str]] = ..., message: _Optional[str] = ..., output: _Optional[str] = ..., reward: _Optional[float] = ..., solved: _Optional[bool] = ..., exit_code: _Optional[int] = ..., duration_s: _Optional[float] = ..., stderr_tail: _Optional[str] = ..., task_messages: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ...) -> None: ...
