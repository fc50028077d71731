from runtime.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAD_MODE_UNSPECIFIED: _ClassVar[LoadMode]
    LOAD_MODE_OPEN_LOOP: _ClassVar[LoadMode]
    LOAD_MODE_CLOSED_LOOP: _ClassVar[LoadMode]
LOAD_MODE_UNSPECIFIED: LoadMode
LOAD_MODE_OPEN_LOOP: LoadMode
LOAD_MODE_CLOSED_LOOP: LoadMode

class LoadConfig(_message.Message):
    __slots__ = ("target_service", "target_role", "requests_per_second", "duration_seconds", "concurrent_clients", "payload", "method", "timeout_ms", "correlation_prefix", "mode")
    TARGET_SERVICE_FIELD_NUMBER: _ClassVar[int]
    TARGET_ROLE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_PREFIX_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    target_service: str
    target_role: str
    requests_per_second: int
    duration_seconds: int
    concurrent_clients: int
    payload: bytes
    method: str
    timeout_ms: int
    correlation_prefix: str
    mode: LoadMode
    def __init__(self, target_service: _Optional[str] = ..., target_role: _Optional[str] = ..., requests_per_second: _Optional[int] = ..., duration_seconds: _Optional[int] = ..., concurrent_clients: _Optional[int] = ..., payload: _Optional[bytes] = ..., method: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., correlation_prefix: _Optional[str] = ..., mode: _Optional[_Union[LoadMode, str]] = ...) -> None: ...

class LoadMetrics(_message.Message):
    __slots__ = ("requests_sent", "requests_succeeded", "requests_failed", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "current_rps", "timestamp", "test_id", "latency_p999_ms", "send_lag_p99_ms", "error_counts", "final", "expired_before_send")
    class ErrorCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    REQUESTS_SENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_RPS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TEST_ID_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P999_MS_FIELD_NUMBER: _ClassVar[int]
    SEND_LAG_P99_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNTS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_BEFORE_SEND_FIELD_NUMBER: _ClassVar[int]
    requests_sent: int
    requests_succeeded: int
    requests_failed: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    current_rps: float
    timestamp: int
    test_id: str
    latency_p999_ms: float
    send_lag_p99_ms: float
    error_counts: _containers.ScalarMap[str, int]
    final: bool
    expired_before_send: int
    def __init__(self, requests_sent: _Optional[int] = ..., requests_succeeded: _Optional[int] = ..., requests_failed: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., current_rps: _Optional[float] = ..., timestamp: _Optional[int] = ..., test_id: _Optional[str] = ..., latency_p999_ms: _Optional[float] = ..., send_lag_p99_ms: _Optional[float] = ..., error_counts: _Optional[_Mapping[str, int]] = ..., final: _Optional[bool] = ..., expired_before_send: _Optional[int] = ...) -> None: ...

class LoadSummary(_message.Message):
    __slots__ = ("total_requests", "total_succeeded", "total_failed", "avg_latency_ms", "min_latency_ms", "max_latency_ms", "error_counts", "test_id", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_p999_ms", "achieved_rps", "expired_before_send")
    class ErrorCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TOTAL_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FAILED_FIELD_NUMBER: _ClassVar[int]
    AVG_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNTS_FIELD_NUMBER: _ClassVar[int]
    TEST_ID_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P999_MS_FIELD_NUMBER: _ClassVar[int]
    ACHIEVED_RPS_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_BEFORE_SEND_FIELD_NUMBER: _ClassVar[int]
    total_requests: int
    total_succeeded: int
    total_failed: int
    avg_latency_ms: float
    min_latency_ms: float
    max_latency_ms: float
    error_counts: _containers.ScalarMap[str, int]
    test_id: str
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_p999_ms: float
    achieved_rps: float
    expired_before_send: int
    def __init__(self, total_requests: _Optional[int] = ..., total_succeeded: _Optional[int] = ..., total_failed: _Optional[int] = ..., avg_latency_ms: _Optional[float] = ..., min_latency_ms: _Optional[float] = ..., max_latency_ms: _Optional[float] = ..., error_counts: _Optional[_Mapping[str, int]] = ..., test_id: _Optional[str] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., latency_p999_ms: _Optional[float] = ..., achieved_rps: _Optional[float] = ..., expired_before_send: _Optional[int] = ...) -> None: ...

class ActiveLoadTests(_message.Message):
    __slots__ = ("tests",)
    TESTS_FIELD_NUMBER: _ClassVar[int]
    tests: _containers.RepeatedCompositeFieldContainer[ActiveLoadTest]
    def __init__(self, tests: _Optional[_Iterable[_Union[ActiveLoadTest, _Mapping]]] = ...) -> None: ...

class ActiveLoadTest(_message.Message):
    __slots__ = ("test_id", "config", "started_at", "latest")
    TEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    test_id: str
    config: LoadConfig
    started_at: int
    latest: LoadMetrics
    def __init__(self, test_id: _Optional[str] = ..., config: _Optional[_Union[LoadConfig, _Mapping]] = ..., started_at: _Optional[int] = ..., latest: _Optional[_Union[LoadMetrics, _Mapping]] = ...) -> None: ...
