from runtime.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HealthState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN: _ClassVar[HealthState]
    STARTING: _ClassVar[HealthState]
    HEALTHY: _ClassVar[HealthState]
    DEGRADED: _ClassVar[HealthState]
    UNHEALTHY: _ClassVar[HealthState]
UNKNOWN: HealthState
STARTING: HealthState
HEALTHY: HealthState
DEGRADED: HealthState
UNHEALTHY: HealthState

class HealthStatus(_message.Message):
    __slots__ = ("service_name", "state", "message", "timestamp", "metadata", "instance_id", "address", "final", "since", "source")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    state: HealthState
    message: str
    timestamp: int
    metadata: _containers.ScalarMap[str, str]
    instance_id: str
    address: str
    final: bool
    since: int
    source: str
    def __init__(self, service_name: _Optional[str] = ..., state: _Optional[_Union[HealthState, str]] = ..., message: _Optional[str] = ..., timestamp: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., instance_id: _Optional[str] = ..., address: _Optional[str] = ..., final: _Optional[bool] = ..., since: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class HealthAck(_message.Message):
    __slots__ = ("ok", "message", "reports")
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    message: str
    reports: int
    def __init__(self, ok: _Optional[bool] = ..., message: _Optional[str] = ..., reports: _Optional[int] = ...) -> None: ...

class ServiceKey(_message.Message):
    __slots__ = ("service_name", "instance_id")
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    instance_id: str
    def __init__(self, service_name: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class HealthEvent(_message.Message):
    __slots__ = ("service_name", "instance_id", "old_state", "new_state", "reason", "timestamp", "snapshot", "dropped", "source", "address")
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_STATE_FIELD_NUMBER: _ClassVar[int]
    NEW_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    instance_id: str
    old_state: HealthState
    new_state: HealthState
    reason: str
    timestamp: int
    snapshot: bool
    dropped: int
    source: str
    address: str
    def __init__(self, service_name: _Optional[str] = ..., instance_id: _Optional[str] = ..., old_state: _Optional[_Union[HealthState, str]] = ..., new_state: _Optional[_Union[HealthState, str]] = ..., reason: _Optional[str] = ..., timestamp: _Optional[int] = ..., snapshot: _Optional[bool] = ..., dropped: _Optional[int] = ..., source: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class HealthHistoryRequest(_message.Message):
    __slots__ = ("service_name", "instance_id", "limit")
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    instance_id: str
    limit: int
    def __init__(self, service_name: _Optional[str] = ..., instance_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class HealthHistory(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[HealthEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[HealthEvent, _Mapping]]] = ...) -> None: ...

class HealthList(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[HealthStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[HealthStatus, _Mapping]]] = ...) -> None: ...
