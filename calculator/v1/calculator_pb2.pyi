from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServedBy(_message.Message):
    __slots__ = ("instance_id", "language", "service_name")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    language: str
    service_name: str
    def __init__(self, instance_id: _Optional[str] = ..., language: _Optional[str] = ..., service_name: _Optional[str] = ...) -> None: ...

class AddRequest(_message.Message):
    __slots__ = ("a", "b")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    a: float
    b: float
    def __init__(self, a: _Optional[float] = ..., b: _Optional[float] = ...) -> None: ...

class AddResponse(_message.Message):
    __slots__ = ("result", "served_by")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    result: float
    served_by: ServedBy
    def __init__(self, result: _Optional[float] = ..., served_by: _Optional[_Union[ServedBy, _Mapping]] = ...) -> None: ...

class SubtractRequest(_message.Message):
    __slots__ = ("a", "b")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    a: float
    b: float
    def __init__(self, a: _Optional[float] = ..., b: _Optional[float] = ...) -> None: ...

class SubtractResponse(_message.Message):
    __slots__ = ("result", "served_by")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    result: float
    served_by: ServedBy
    def __init__(self, result: _Optional[float] = ..., served_by: _Optional[_Union[ServedBy, _Mapping]] = ...) -> None: ...

class MultiplyRequest(_message.Message):
    __slots__ = ("a", "b")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    a: float
    b: float
    def __init__(self, a: _Optional[float] = ..., b: _Optional[float] = ...) -> None: ...

class MultiplyResponse(_message.Message):
    __slots__ = ("result", "served_by")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    result: float
    served_by: ServedBy
    def __init__(self, result: _Optional[float] = ..., served_by: _Optional[_Union[ServedBy, _Mapping]] = ...) -> None: ...

class DivideRequest(_message.Message):
    __slots__ = ("a", "b")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    a: float
    b: float
    def __init__(self, a: _Optional[float] = ..., b: _Optional[float] = ...) -> None: ...

class DivideResponse(_message.Message):
    __slots__ = ("result", "served_by")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    result: float
    served_by: ServedBy
    def __init__(self, result: _Optional[float] = ..., served_by: _Optional[_Union[ServedBy, _Mapping]] = ...) -> None: ...
