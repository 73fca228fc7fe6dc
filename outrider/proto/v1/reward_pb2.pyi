from outrider.proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Shaping(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHAPING_UNSPECIFIED: _ClassVar[Shaping]
    SHAPING_DIFFERENCE: _ClassVar[Shaping]
    SHAPING_MIN: _ClassVar[Shaping]
    SHAPING_LAST: _ClassVar[Shaping]
    SHAPING_RAW: _ClassVar[Shaping]
SHAPING_UNSPECIFIED: Shaping
SHAPING_DIFFERENCE: Shaping
SHAPING_MIN: Shaping
SHAPING_LAST: Shaping
SHAPING_RAW: Shaping

class ScoreItem(_message.Message):
    __slots__ = ("id", "env", "task_id", "prompt", "response", "reference", "response_tokens", "conversation")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    env: str
    task_id: str
    prompt: str
    response: str
    reference: str
    response_tokens: int
    conversation: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    def __init__(self, id: _Optional[str] = ..., env: _Optional[str] = ..., task_id: _Optional[str] = ..., prompt: _Optional[str] = ..., response: _Optional[str] = ..., reference: _Optional[str] = ..., response_tokens: _Optional[int] = ..., conversation: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("items", "verifiers")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoreItem]
    verifiers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, items: _Optional[_Iterable[_Union[ScoreItem, _Mapping]]] = ..., verifiers: _Optional[_Iterable[str]] = ...) -> None: ...

class ComponentScore(_message.Message):
    __slots__ = ("name", "weight", "value", "status", "detail", "constraint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    weight: float
    value: float
    status: _common_pb2.ItemStatus
    detail: str
    constraint: _common_pb2.RewardConstraint
    def __init__(self, name: _Optional[str] = ..., weight: _Optional[float] = ..., value: _Optional[float] = ..., status: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ..., detail: _Optional[str] = ..., constraint: _Optional[_Union[_common_pb2.RewardConstraint, _Mapping]] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("id", "reward", "status", "components")
    ID_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    reward: float
    status: _common_pb2.ItemStatus
    components: _containers.RepeatedCompositeFieldContainer[ComponentScore]
    def __init__(self, id: _Optional[str] = ..., reward: _Optional[float] = ..., status: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ..., components: _Optional[_Iterable[_Union[ComponentScore, _Mapping]]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ...) -> None: ...

class Segmentation(_message.Message):
    __slots__ = ("mode", "delimiter")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MODE_UNSPECIFIED: _ClassVar[Segmentation.Mode]
        BY_TURN: _ClassVar[Segmentation.Mode]
        BY_DELIMITER: _ClassVar[Segmentation.Mode]
    MODE_UNSPECIFIED: Segmentation.Mode
    BY_TURN: Segmentation.Mode
    BY_DELIMITER: Segmentation.Mode
    MODE_FIELD_NUMBER: _ClassVar[int]
    DELIMITER_FIELD_NUMBER: _ClassVar[int]
    mode: Segmentation.Mode
    delimiter: str
    def __init__(self, mode: _Optional[_Union[Segmentation.Mode, str]] = ..., delimiter: _Optional[str] = ...) -> None: ...

class StepsItem(_message.Message):
    __slots__ = ("id", "env", "task_id", "conversation", "segmentation", "shaping")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    SHAPING_FIELD_NUMBER: _ClassVar[int]
    id: str
    env: str
    task_id: str
    conversation: _containers.RepeatedCompositeFieldContainer[_common_pb2.ChatMessage]
    segmentation: Segmentation
    shaping: Shaping
    def __init__(self, id: _Optional[str] = ..., env: _Optional[str] = ..., task_id: _Optional[str] = ..., conversation: _Optional[_Iterable[_Union[_common_pb2.ChatMessage, _Mapping]]] = ..., segmentation: _Optional[_Union[Segmentation, _Mapping]] = ..., shaping: _Optional[_Union[Shaping, str]] = ...) -> None: ...

class ScoreStepsRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[StepsItem]
    def __init__(self, items: _Optional[_Iterable[_Union[StepsItem, _Mapping]]] = ...) -> None: ...

class StepSpan(_message.Message):
    __slots__ = ("message_index", "char_start", "char_end")
    MESSAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHAR_START_FIELD_NUMBER: _ClassVar[int]
    CHAR_END_FIELD_NUMBER: _ClassVar[int]
    message_index: int
    char_start: int
    char_end: int
    def __init__(self, message_index: _Optional[int] = ..., char_start: _Optional[int] = ..., char_end: _Optional[int] = ...) -> None: ...

class StepScores(_message.Message):
    __slots__ = ("id", "steps", "scores", "rewards", "shaping", "status", "disagreement")
    ID_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    SHAPING_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    steps: _containers.RepeatedCompositeFieldContainer[StepSpan]
    scores: _containers.RepeatedScalarFieldContainer[float]
    rewards: _containers.RepeatedScalarFieldContainer[float]
    shaping: Shaping
    status: _common_pb2.ItemStatus
    disagreement: float
    def __init__(self, id: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[StepSpan, _Mapping]]] = ..., scores: _Optional[_Iterable[float]] = ..., rewards: _Optional[_Iterable[float]] = ..., shaping: _Optional[_Union[Shaping, str]] = ..., status: _Optional[_Union[_common_pb2.ItemStatus, _Mapping]] = ..., disagreement: _Optional[float] = ...) -> None: ...

class ScoreStepsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[StepScores]
    def __init__(self, results: _Optional[_Iterable[_Union[StepScores, _Mapping]]] = ...) -> None: ...

class RewardInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RewardInfo(_message.Message):
    __slots__ = ("verifiers", "prm", "segmentation", "shaping")
    VERIFIERS_FIELD_NUMBER: _ClassVar[int]
    PRM_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    SHAPING_FIELD_NUMBER: _ClassVar[int]
    verifiers: _containers.RepeatedCompositeFieldContainer[ComponentScore]
    prm: str
    segmentation: Segmentation
    shaping: Shaping
    def __init__(self, verifiers: _Optional[_Iterable[_Union[ComponentScore, _Mapping]]] = ..., prm: _Optional[str] = ..., segmentation: _Optional[_Union[Segmentation, _Mapping]] = ..., shaping: _Optional[_Union[Shaping, str]] = ...) -> None: ...
