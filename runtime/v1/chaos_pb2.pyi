from runtime.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CRASH: _ClassVar[FaultType]
    DELAY: _ClassVar[FaultType]
    PACKET_LOSS: _ClassVar[FaultType]
    CPU_HOG: _ClassVar[FaultType]
    MEMORY_LEAK: _ClassVar[FaultType]
    ERROR_INJECT: _ClassVar[FaultType]
CRASH: FaultType
DELAY: FaultType
PACKET_LOSS: FaultType
CPU_HOG: FaultType
MEMORY_LEAK: FaultType
ERROR_INJECT: FaultType

class FaultConfig(_message.Message):
    __slots__ = ("target_service", "type", "duration_seconds", "params", "target_instance")
    TARGET_SERVICE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TARGET_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    target_service: str
    type: FaultType
    duration_seconds: int
    params: FaultParams
    target_instance: str
    def __init__(self, target_service: _Optional[str] = ..., type: _Optional[_Union[FaultType, str]] = ..., duration_seconds: _Optional[int] = ..., params: _Optional[_Union[FaultParams, _Mapping]] = ..., target_instance: _Optional[str] = ...) -> None: ...

class FaultParams(_message.Message):
    __slots__ = ("delay_ms", "packet_loss_pct", "cpu_threads", "memory_mb", "error_rate")
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    PACKET_LOSS_PCT_FIELD_NUMBER: _ClassVar[int]
    CPU_THREADS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    delay_ms: int
    packet_loss_pct: float
    cpu_threads: int
    memory_mb: int
    error_rate: float
    def __init__(self, delay_ms: _Optional[int] = ..., packet_loss_pct: _Optional[float] = ..., cpu_threads: _Optional[int] = ..., memory_mb: _Optional[int] = ..., error_rate: _Optional[float] = ...) -> None: ...

class FaultStatus(_message.Message):
    __slots__ = ("fault_id", "active", "message")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    active: bool
    message: str
    def __init__(self, fault_id: _Optional[str] = ..., active: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class FaultId(_message.Message):
    __slots__ = ("fault_id",)
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    def __init__(self, fault_id: _Optional[str] = ...) -> None: ...

class ActiveFault(_message.Message):
    __slots__ = ("fault_id", "config", "created_at", "expires_at")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    config: FaultConfig
    created_at: int
    expires_at: int
    def __init__(self, fault_id: _Optional[str] = ..., config: _Optional[_Union[FaultConfig, _Mapping]] = ..., created_at: _Optional[int] = ..., expires_at: _Optional[int] = ...) -> None: ...

class FaultList(_message.Message):
    __slots__ = ("faults",)
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    faults: _containers.RepeatedCompositeFieldContainer[ActiveFault]
    def __init__(self, faults: _Optional[_Iterable[_Union[ActiveFault, _Mapping]]] = ...) -> None: ...

class ClearFaultResponse(_message.Message):
    __slots__ = ("cleared", "message")
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    cleared: bool
    message: str
    def __init__(self, cleared: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class ClearAllFaultsResponse(_message.Message):
    __slots__ = ("cleared",)
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    cleared: int
    def __init__(self, cleared: _Optional[int] = ...) -> None: ...

class WatchFaultsRequest(_message.Message):
    __slots__ = ("service_name", "instance_id")
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    instance_id: str
    def __init__(self, service_name: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...
