from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProcessState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESS_STATE_UNSPECIFIED: _ClassVar[ProcessState]
    PROCESS_STATE_STOPPED: _ClassVar[ProcessState]
    PROCESS_STATE_STARTING: _ClassVar[ProcessState]
    PROCESS_STATE_RUNNING: _ClassVar[ProcessState]
    PROCESS_STATE_BACKOFF: _ClassVar[ProcessState]
    PROCESS_STATE_STOPPING: _ClassVar[ProcessState]
    PROCESS_STATE_EXITED: _ClassVar[ProcessState]
    PROCESS_STATE_FATAL: _ClassVar[ProcessState]
    PROCESS_STATE_WAITING: _ClassVar[ProcessState]
    PROCESS_STATE_SKIPPED: _ClassVar[ProcessState]

class ProcessEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESS_EVENT_KIND_UNSPECIFIED: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_SPAWNED: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_READY: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_EXITED: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_RESTART_SCHEDULED: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_STOPPING: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_STOPPED: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_FATAL: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_SIGNALED: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_SCALED: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_START_FAILED: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_LEASE: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_WAITING: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_NOT_RESPONDING: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_RESPONDING: _ClassVar[ProcessEventKind]
PROCESS_STATE_UNSPECIFIED: ProcessState
PROCESS_STATE_STOPPED: ProcessState
PROCESS_STATE_STARTING: ProcessState
PROCESS_STATE_RUNNING: ProcessState
PROCESS_STATE_BACKOFF: ProcessState
PROCESS_STATE_STOPPING: ProcessState
PROCESS_STATE_EXITED: ProcessState
PROCESS_STATE_FATAL: ProcessState
PROCESS_STATE_WAITING: ProcessState
PROCESS_STATE_SKIPPED: ProcessState
PROCESS_EVENT_KIND_UNSPECIFIED: ProcessEventKind
PROCESS_EVENT_KIND_SPAWNED: ProcessEventKind
PROCESS_EVENT_KIND_READY: ProcessEventKind
PROCESS_EVENT_KIND_EXITED: ProcessEventKind
PROCESS_EVENT_KIND_RESTART_SCHEDULED: ProcessEventKind
PROCESS_EVENT_KIND_STOPPING: ProcessEventKind
PROCESS_EVENT_KIND_STOPPED: ProcessEventKind
PROCESS_EVENT_KIND_FATAL: ProcessEventKind
PROCESS_EVENT_KIND_SIGNALED: ProcessEventKind
PROCESS_EVENT_KIND_SCALED: ProcessEventKind
PROCESS_EVENT_KIND_START_FAILED: ProcessEventKind
PROCESS_EVENT_KIND_LEASE: ProcessEventKind
PROCESS_EVENT_KIND_WAITING: ProcessEventKind
PROCESS_EVENT_KIND_NOT_RESPONDING: ProcessEventKind
PROCESS_EVENT_KIND_RESPONDING: ProcessEventKind

class ProcessInfo(_message.Message):
    __slots__ = ("service", "instance_id", "pid", "state", "restarts", "port", "uptime_s", "cpu_percent", "rss_mb", "exit_code", "last_exit_reason", "next_start_at", "language", "command", "started_at", "liveness", "not_responding", "liveness_reason", "http_port")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RSS_MB_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    LAST_EXIT_REASON_FIELD_NUMBER: _ClassVar[int]
    NEXT_START_AT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_FIELD_NUMBER: _ClassVar[int]
    NOT_RESPONDING_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_REASON_FIELD_NUMBER: _ClassVar[int]
    HTTP_PORT_FIELD_NUMBER: _ClassVar[int]
    service: str
    instance_id: str
    pid: int
    state: ProcessState
    restarts: int
    port: int
    uptime_s: float
    cpu_percent: float
    rss_mb: float
    exit_code: int
    last_exit_reason: str
    next_start_at: int
    language: str
    command: _containers.RepeatedScalarFieldContainer[str]
    started_at: int
    liveness: LivenessSettings
    not_responding: bool
    liveness_reason: str
    http_port: int
    def __init__(self, service: _Optional[str] = ..., instance_id: _Optional[str] = ..., pid: _Optional[int] = ..., state: _Optional[_Union[ProcessState, str]] = ..., restarts: _Optional[int] = ..., port: _Optional[int] = ..., uptime_s: _Optional[float] = ..., cpu_percent: _Optional[float] = ..., rss_mb: _Optional[float] = ..., exit_code: _Optional[int] = ..., last_exit_reason: _Optional[str] = ..., next_start_at: _Optional[int] = ..., language: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., started_at: _Optional[int] = ..., liveness: _Optional[_Union[LivenessSettings, _Mapping]] = ..., not_responding: _Optional[bool] = ..., liveness_reason: _Optional[str] = ..., http_port: _Optional[int] = ...) -> None: ...

class LivenessSettings(_message.Message):
    __slots__ = ("period_s", "timeout_s", "failures", "restart_after_s")
    PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    RESTART_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    period_s: float
    timeout_s: float
    failures: int
    restart_after_s: float
    def __init__(self, period_s: _Optional[float] = ..., timeout_s: _Optional[float] = ..., failures: _Optional[int] = ..., restart_after_s: _Optional[float] = ...) -> None: ...

class ProcessEvent(_message.Message):
    __slots__ = ("seq", "timestamp", "service", "instance_id", "pid", "kind", "reason", "exit_code", "signal", "rule", "next_attempt_at", "timestamp_us", "dropped")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    timestamp: int
    service: str
    instance_id: str
    pid: int
    kind: ProcessEventKind
    reason: str
    exit_code: int
    signal: int
    rule: str
    next_attempt_at: int
    timestamp_us: int
    dropped: int
    def __init__(self, seq: _Optional[int] = ..., timestamp: _Optional[int] = ..., service: _Optional[str] = ..., instance_id: _Optional[str] = ..., pid: _Optional[int] = ..., kind: _Optional[_Union[ProcessEventKind, str]] = ..., reason: _Optional[str] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., rule: _Optional[str] = ..., next_attempt_at: _Optional[int] = ..., timestamp_us: _Optional[int] = ..., dropped: _Optional[int] = ...) -> None: ...

class GetLabInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLabInfoResponse(_message.Message):
    __slots__ = ("lab_dir", "config_path", "pid", "address", "broker_address", "started_at", "leases", "linger_s", "shutting_down", "project_root", "connect_address")
    LAB_DIR_FIELD_NUMBER: _ClassVar[int]
    CONFIG_PATH_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BROKER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    LINGER_S_FIELD_NUMBER: _ClassVar[int]
    SHUTTING_DOWN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ROOT_FIELD_NUMBER: _ClassVar[int]
    CONNECT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    lab_dir: str
    config_path: str
    pid: int
    address: str
    broker_address: str
    started_at: int
    leases: int
    linger_s: float
    shutting_down: bool
    project_root: str
    connect_address: str
    def __init__(self, lab_dir: _Optional[str] = ..., config_path: _Optional[str] = ..., pid: _Optional[int] = ..., address: _Optional[str] = ..., broker_address: _Optional[str] = ..., started_at: _Optional[int] = ..., leases: _Optional[int] = ..., linger_s: _Optional[float] = ..., shutting_down: _Optional[bool] = ..., project_root: _Optional[str] = ..., connect_address: _Optional[str] = ...) -> None: ...

class ListProcessesRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class ListProcessesResponse(_message.Message):
    __slots__ = ("processes",)
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessInfo]
    def __init__(self, processes: _Optional[_Iterable[_Union[ProcessInfo, _Mapping]]] = ...) -> None: ...

class StartProcessRequest(_message.Message):
    __slots__ = ("service", "instance_id")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    service: str
    instance_id: str
    def __init__(self, service: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class StartProcessResponse(_message.Message):
    __slots__ = ("processes",)
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessInfo]
    def __init__(self, processes: _Optional[_Iterable[_Union[ProcessInfo, _Mapping]]] = ...) -> None: ...

class StopProcessRequest(_message.Message):
    __slots__ = ("service", "instance_id")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    service: str
    instance_id: str
    def __init__(self, service: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class StopProcessResponse(_message.Message):
    __slots__ = ("processes",)
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessInfo]
    def __init__(self, processes: _Optional[_Iterable[_Union[ProcessInfo, _Mapping]]] = ...) -> None: ...

class RestartProcessRequest(_message.Message):
    __slots__ = ("service", "instance_id")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    service: str
    instance_id: str
    def __init__(self, service: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class RestartProcessResponse(_message.Message):
    __slots__ = ("processes",)
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessInfo]
    def __init__(self, processes: _Optional[_Iterable[_Union[ProcessInfo, _Mapping]]] = ...) -> None: ...

class ScaleServiceRequest(_message.Message):
    __slots__ = ("service", "instances")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    service: str
    instances: int
    def __init__(self, service: _Optional[str] = ..., instances: _Optional[int] = ...) -> None: ...

class ScaleServiceResponse(_message.Message):
    __slots__ = ("processes",)
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessInfo]
    def __init__(self, processes: _Optional[_Iterable[_Union[ProcessInfo, _Mapping]]] = ...) -> None: ...

class SignalProcessRequest(_message.Message):
    __slots__ = ("service", "instance_id", "pid", "signal")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    service: str
    instance_id: str
    pid: int
    signal: str
    def __init__(self, service: _Optional[str] = ..., instance_id: _Optional[str] = ..., pid: _Optional[int] = ..., signal: _Optional[str] = ...) -> None: ...

class SignalProcessResponse(_message.Message):
    __slots__ = ("pid", "instance_id", "signal")
    PID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    pid: int
    instance_id: str
    signal: str
    def __init__(self, pid: _Optional[int] = ..., instance_id: _Optional[str] = ..., signal: _Optional[str] = ...) -> None: ...

class WatchProcessEventsRequest(_message.Message):
    __slots__ = ("replay", "service")
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    replay: int
    service: str
    def __init__(self, replay: _Optional[int] = ..., service: _Optional[str] = ...) -> None: ...

class ListProcessEventsRequest(_message.Message):
    __slots__ = ("after_seq", "limit", "service")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    limit: int
    service: str
    def __init__(self, after_seq: _Optional[int] = ..., limit: _Optional[int] = ..., service: _Optional[str] = ...) -> None: ...

class ListProcessEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ProcessEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[ProcessEvent, _Mapping]]] = ...) -> None: ...

class GetProcessOutputRequest(_message.Message):
    __slots__ = ("instance_id", "lines")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    lines: int
    def __init__(self, instance_id: _Optional[str] = ..., lines: _Optional[int] = ...) -> None: ...

class OutputLine(_message.Message):
    __slots__ = ("timestamp", "stream", "text", "pid")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    stream: str
    text: str
    pid: int
    def __init__(self, timestamp: _Optional[int] = ..., stream: _Optional[str] = ..., text: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class GetProcessOutputResponse(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[OutputLine]
    def __init__(self, lines: _Optional[_Iterable[_Union[OutputLine, _Mapping]]] = ...) -> None: ...

class RunJobRequest(_message.Message):
    __slots__ = ("job", "args", "env", "timeout_ms")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    job: str
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    timeout_ms: int
    def __init__(self, job: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class RunJobResponse(_message.Message):
    __slots__ = ("exit_code", "stdout", "stderr", "elapsed_ms", "pid", "instance_id")
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    exit_code: int
    stdout: str
    stderr: str
    elapsed_ms: float
    pid: int
    instance_id: str
    def __init__(self, exit_code: _Optional[int] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., elapsed_ms: _Optional[float] = ..., pid: _Optional[int] = ..., instance_id: _Optional[str] = ...) -> None: ...

class AcquireLeaseRequest(_message.Message):
    __slots__ = ("holder", "ttl_ms")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    holder: str
    ttl_ms: int
    def __init__(self, holder: _Optional[str] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class AcquireLeaseResponse(_message.Message):
    __slots__ = ("lease_id", "ttl_ms")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    ttl_ms: int
    def __init__(self, lease_id: _Optional[str] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class RenewLeaseRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    def __init__(self, lease_id: _Optional[str] = ...) -> None: ...

class RenewLeaseResponse(_message.Message):
    __slots__ = ("expires_at",)
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    expires_at: int
    def __init__(self, expires_at: _Optional[int] = ...) -> None: ...

class ReleaseLeaseRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    def __init__(self, lease_id: _Optional[str] = ...) -> None: ...

class ReleaseLeaseResponse(_message.Message):
    __slots__ = ("remaining",)
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    remaining: int
    def __init__(self, remaining: _Optional[int] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
