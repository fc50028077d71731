from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRACE: _ClassVar[LogLevel]
    DEBUG: _ClassVar[LogLevel]
    INFO: _ClassVar[LogLevel]
    WARN: _ClassVar[LogLevel]
    ERROR: _ClassVar[LogLevel]
    FATAL: _ClassVar[LogLevel]
TRACE: LogLevel
DEBUG: LogLevel
INFO: LogLevel
WARN: LogLevel
ERROR: LogLevel
FATAL: LogLevel

class LogEntry(_message.Message):
    __slots__ = ("service_name", "level", "message", "timestamp", "correlation_id", "metadata", "instance_id", "sequence", "source", "dropped", "timestamp_us", "batch")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    service_name: str
    level: LogLevel
    message: str
    timestamp: int
    correlation_id: str
    metadata: _containers.ScalarMap[str, str]
    instance_id: str
    sequence: int
    source: str
    dropped: int
    timestamp_us: int
    batch: _containers.RepeatedCompositeFieldContainer[LogEntry]
    def __init__(self, service_name: _Optional[str] = ..., level: _Optional[_Union[LogLevel, str]] = ..., message: _Optional[str] = ..., timestamp: _Optional[int] = ..., correlation_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., instance_id: _Optional[str] = ..., sequence: _Optional[int] = ..., source: _Optional[str] = ..., dropped: _Optional[int] = ..., timestamp_us: _Optional[int] = ..., batch: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ...) -> None: ...

class LogQuery(_message.Message):
    __slots__ = ("service_names", "min_level", "start_time", "end_time", "search_text", "correlation_id", "instance_ids", "limit", "newest_first", "batched")
    SERVICE_NAMES_FIELD_NUMBER: _ClassVar[int]
    MIN_LEVEL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SEARCH_TEXT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    service_names: _containers.RepeatedScalarFieldContainer[str]
    min_level: LogLevel
    start_time: int
    end_time: int
    search_text: str
    correlation_id: str
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    newest_first: bool
    batched: bool
    def __init__(self, service_names: _Optional[_Iterable[str]] = ..., min_level: _Optional[_Union[LogLevel, str]] = ..., start_time: _Optional[int] = ..., end_time: _Optional[int] = ..., search_text: _Optional[str] = ..., correlation_id: _Optional[str] = ..., instance_ids: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ..., newest_first: _Optional[bool] = ..., batched: _Optional[bool] = ...) -> None: ...

class LogFilter(_message.Message):
    __slots__ = ("service_names", "min_level", "search_text", "correlation_id", "instance_ids")
    SERVICE_NAMES_FIELD_NUMBER: _ClassVar[int]
    MIN_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SEARCH_TEXT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    service_names: _containers.RepeatedScalarFieldContainer[str]
    min_level: LogLevel
    search_text: str
    correlation_id: str
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, service_names: _Optional[_Iterable[str]] = ..., min_level: _Optional[_Union[LogLevel, str]] = ..., search_text: _Optional[str] = ..., correlation_id: _Optional[str] = ..., instance_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LogAck(_message.Message):
    __slots__ = ("accepted", "truncated", "last_sequence", "message")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    truncated: int
    last_sequence: int
    message: str
    def __init__(self, accepted: _Optional[int] = ..., truncated: _Optional[int] = ..., last_sequence: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
