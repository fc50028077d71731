from runtime.v1 import health_pb2 as _health_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServiceEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_EVENT_TYPE_UNSPECIFIED: _ClassVar[ServiceEventType]
    SERVICE_EVENT_TYPE_ADDED: _ClassVar[ServiceEventType]
    SERVICE_EVENT_TYPE_REMOVED: _ClassVar[ServiceEventType]
    SERVICE_EVENT_TYPE_UPDATED: _ClassVar[ServiceEventType]
    SERVICE_EVENT_TYPE_SNAPSHOT_END: _ClassVar[ServiceEventType]
SERVICE_EVENT_TYPE_UNSPECIFIED: ServiceEventType
SERVICE_EVENT_TYPE_ADDED: ServiceEventType
SERVICE_EVENT_TYPE_REMOVED: ServiceEventType
SERVICE_EVENT_TYPE_UPDATED: ServiceEventType
SERVICE_EVENT_TYPE_SNAPSHOT_END: ServiceEventType

class ServiceInstance(_message.Message):
    __slots__ = ("service_name", "instance_id", "address", "grpc_services", "role", "metadata", "pid", "language", "health", "registered_at", "lease_expires_at")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GRPC_SERVICES_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    instance_id: str
    address: str
    grpc_services: _containers.RepeatedScalarFieldContainer[str]
    role: str
    metadata: _containers.ScalarMap[str, str]
    pid: int
    language: str
    health: _health_pb2.HealthState
    registered_at: int
    lease_expires_at: int
    def __init__(self, service_name: _Optional[str] = ..., instance_id: _Optional[str] = ..., address: _Optional[str] = ..., grpc_services: _Optional[_Iterable[str]] = ..., role: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., pid: _Optional[int] = ..., language: _Optional[str] = ..., health: _Optional[_Union[_health_pb2.HealthState, str]] = ..., registered_at: _Optional[int] = ..., lease_expires_at: _Optional[int] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("instance", "ttl_ms")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    instance: ServiceInstance
    ttl_ms: int
    def __init__(self, instance: _Optional[_Union[ServiceInstance, _Mapping]] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("lease_id", "ttl_ms", "revision")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    ttl_ms: int
    revision: int
    def __init__(self, lease_id: _Optional[str] = ..., ttl_ms: _Optional[int] = ..., revision: _Optional[int] = ...) -> None: ...

class KeepAliveRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    def __init__(self, lease_id: _Optional[str] = ...) -> None: ...

class KeepAliveResponse(_message.Message):
    __slots__ = ("lease_id", "ttl_ms", "expires_at")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    ttl_ms: int
    expires_at: int
    def __init__(self, lease_id: _Optional[str] = ..., ttl_ms: _Optional[int] = ..., expires_at: _Optional[int] = ...) -> None: ...

class DeregisterRequest(_message.Message):
    __slots__ = ("instance_id", "lease_id", "reason")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    lease_id: str
    reason: str
    def __init__(self, instance_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeregisterResponse(_message.Message):
    __slots__ = ("removed", "revision")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    revision: int
    def __init__(self, removed: _Optional[bool] = ..., revision: _Optional[int] = ...) -> None: ...

class LookupServiceRequest(_message.Message):
    __slots__ = ("service_name", "role", "include_unhealthy")
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNHEALTHY_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    role: str
    include_unhealthy: bool
    def __init__(self, service_name: _Optional[str] = ..., role: _Optional[str] = ..., include_unhealthy: _Optional[bool] = ...) -> None: ...

class LookupServiceResponse(_message.Message):
    __slots__ = ("instances", "revision")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[ServiceInstance]
    revision: int
    def __init__(self, instances: _Optional[_Iterable[_Union[ServiceInstance, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class ListServicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("instances", "revision")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[ServiceInstance]
    revision: int
    def __init__(self, instances: _Optional[_Iterable[_Union[ServiceInstance, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class WatchServicesRequest(_message.Message):
    __slots__ = ("service_name", "from_revision")
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_REVISION_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    from_revision: int
    def __init__(self, service_name: _Optional[str] = ..., from_revision: _Optional[int] = ...) -> None: ...

class ServiceEvent(_message.Message):
    __slots__ = ("type", "instance", "revision", "reason", "timestamp")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    type: ServiceEventType
    instance: ServiceInstance
    revision: int
    reason: str
    timestamp: int
    def __init__(self, type: _Optional[_Union[ServiceEventType, str]] = ..., instance: _Optional[_Union[ServiceInstance, _Mapping]] = ..., revision: _Optional[int] = ..., reason: _Optional[str] = ..., timestamp: _Optional[int] = ...) -> None: ...

class ReportExitRequest(_message.Message):
    __slots__ = ("instance_id", "pid", "reason")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    pid: int
    reason: str
    def __init__(self, instance_id: _Optional[str] = ..., pid: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ReportExitResponse(_message.Message):
    __slots__ = ("removed", "revision")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    revision: int
    def __init__(self, removed: _Optional[bool] = ..., revision: _Optional[int] = ...) -> None: ...

class SetInstanceHealthRequest(_message.Message):
    __slots__ = ("instance_id", "state", "reason")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    state: _health_pb2.HealthState
    reason: str
    def __init__(self, instance_id: _Optional[str] = ..., state: _Optional[_Union[_health_pb2.HealthState, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class SetInstanceHealthResponse(_message.Message):
    __slots__ = ("known", "revision")
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    known: bool
    revision: int
    def __init__(self, known: _Optional[bool] = ..., revision: _Optional[int] = ...) -> None: ...
