from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConfigKey(_message.Message):
    __slots__ = ("namespace", "key")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class ConfigValue(_message.Message):
    __slots__ = ("value", "value_type", "version", "namespace", "key", "updated_at", "deleted")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    value: str
    value_type: str
    version: int
    namespace: str
    key: str
    updated_at: int
    deleted: bool
    def __init__(self, value: _Optional[str] = ..., value_type: _Optional[str] = ..., version: _Optional[int] = ..., namespace: _Optional[str] = ..., key: _Optional[str] = ..., updated_at: _Optional[int] = ..., deleted: _Optional[bool] = ...) -> None: ...

class ConfigEntry(_message.Message):
    __slots__ = ("namespace", "key", "value", "value_type", "expected_version")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    value: str
    value_type: str
    expected_version: int
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[str] = ..., value_type: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ConfigAck(_message.Message):
    __slots__ = ("ok", "version", "message")
    OK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    version: int
    message: str
    def __init__(self, ok: _Optional[bool] = ..., version: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ConfigDeleteAck(_message.Message):
    __slots__ = ("deleted", "message")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    message: str
    def __init__(self, deleted: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ConfigNamespace(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class ConfigList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[ConfigValue]
    def __init__(self, values: _Optional[_Iterable[_Union[ConfigValue, _Mapping]]] = ...) -> None: ...

class ConfigKeySpec(_message.Message):
    __slots__ = ("key", "value_type", "min", "max", "choices", "default_value", "description")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    value_type: str
    min: int
    max: int
    choices: _containers.RepeatedScalarFieldContainer[str]
    default_value: str
    description: str
    def __init__(self, key: _Optional[str] = ..., value_type: _Optional[str] = ..., min: _Optional[int] = ..., max: _Optional[int] = ..., choices: _Optional[_Iterable[str]] = ..., default_value: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ConfigSchema(_message.Message):
    __slots__ = ("namespace", "keys", "registered_by", "registered_at")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    keys: _containers.RepeatedCompositeFieldContainer[ConfigKeySpec]
    registered_by: str
    registered_at: int
    def __init__(self, namespace: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[ConfigKeySpec, _Mapping]]] = ..., registered_by: _Optional[str] = ..., registered_at: _Optional[int] = ...) -> None: ...

class ConfigSchemaAck(_message.Message):
    __slots__ = ("ok", "message", "invalid")
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    INVALID_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    message: str
    invalid: _containers.RepeatedCompositeFieldContainer[ConfigValue]
    def __init__(self, ok: _Optional[bool] = ..., message: _Optional[str] = ..., invalid: _Optional[_Iterable[_Union[ConfigValue, _Mapping]]] = ...) -> None: ...
