from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StateKey(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class StateValue(_message.Message):
    __slots__ = ("key", "value", "version", "updated_at")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    version: int
    updated_at: int
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ..., version: _Optional[int] = ..., updated_at: _Optional[int] = ...) -> None: ...

class StateEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class StateAck(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class CASRequest(_message.Message):
    __slots__ = ("key", "expected_version", "new_value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEW_VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    expected_version: int
    new_value: str
    def __init__(self, key: _Optional[str] = ..., expected_version: _Optional[int] = ..., new_value: _Optional[str] = ...) -> None: ...

class CASResponse(_message.Message):
    __slots__ = ("swapped", "current")
    SWAPPED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    swapped: bool
    current: StateValue
    def __init__(self, swapped: _Optional[bool] = ..., current: _Optional[_Union[StateValue, _Mapping]] = ...) -> None: ...

class LockRequest(_message.Message):
    __slots__ = ("name", "owner", "ttl_ms", "wait_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner: str
    ttl_ms: int
    wait_ms: int
    def __init__(self, name: _Optional[str] = ..., owner: _Optional[str] = ..., ttl_ms: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class LockResponse(_message.Message):
    __slots__ = ("acquired", "lock_id", "fencing_token", "holder", "expires_at")
    ACQUIRED_FIELD_NUMBER: _ClassVar[int]
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    acquired: bool
    lock_id: str
    fencing_token: int
    holder: str
    expires_at: int
    def __init__(self, acquired: _Optional[bool] = ..., lock_id: _Optional[str] = ..., fencing_token: _Optional[int] = ..., holder: _Optional[str] = ..., expires_at: _Optional[int] = ...) -> None: ...

class LockId(_message.Message):
    __slots__ = ("lock_id",)
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    lock_id: str
    def __init__(self, lock_id: _Optional[str] = ...) -> None: ...

class LockAck(_message.Message):
    __slots__ = ("released", "message")
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    released: bool
    message: str
    def __init__(self, released: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...
