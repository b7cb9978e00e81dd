"""Shrinking validated models that will not change: what the caches do to each model they keep.

Where it sits: between decoding and the caches that hold a process's models — the informer
(``controller.cache``, one model per object of every watched kind) and the API server's watch
cache (``apiserver.watchcache``). A small pydantic model costs far more than its data: beside
its values it carries

* ``__pydantic_fields_set__``, a Python set of its own (728 bytes for five names), and
* ``__dict__``, which pydantic-core builds as an ordinary dict holding a key table of its own.

:func:`compact` replaces the first by one set shared by every model that set the same field
names, and the second by a copy of a dict on the key table every instance of the class shares
(CPython builds one when attributes are set one by one on an instance; copies keep it). Values
stay exactly as they were (the same objects), so equality, dumps, copies and reads are
unchanged; an Instance of ten models shrinks from about 11 KB to 5 KB.

Only for models nobody changes: pydantic adds a field's name to the fields set when the field
is assigned, so a compacted model changed afterwards would mark that field as set in every
model sharing its set (nothing reads the sets: no ``exclude_unset`` anywhere). Copies
(``clone``, ``model_copy``) get sets and dicts of their own and may be changed freely.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel

__all__ = ["compact"]

#: The shared fields set of every distinct set of field names. The kinds' shapes give a few
#: hundred at most; past the bound, models keep their own.
_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_MAX_FIELD_SETS = 4096


@dataclass(frozen=True)
class _Shape:
    """What :func:`compact` knows of one model class."""

    #: The field names, in order: a validated model's ``__dict__`` holds them in this order.
    names: tuple[str, ...]
    #: A dict of those names (values None) on the key table the class's instances share:
    #: copying it and updating the copy makes a new such dict without a loop in Python.
    template: dict[str, Any]
    #: The fields whose annotation can hold a model (directly, or as the items of a list or
    #: dict): the only values :func:`compact` looks into.
    nested: tuple[str, ...]


_SHAPES: dict[type[BaseModel], _Shape] = {}
_lock = threading.Lock()


def _holds_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in get_args(annotation))


def _shape(cls: type[BaseModel]) -> _Shape:
    fields = cls.model_fields
    blank = cls.__new__(cls)
    for name in fields:
        object.__setattr__(blank, name, None)  # CPython puts these on the class's key table
    nested = tuple(name for name, info in fields.items() if _holds_model(info.annotation))
    shape = _Shape(tuple(fields), blank.__dict__, nested)
    with _lock:
        return _SHAPES.setdefault(cls, shape)


def _new_fields_set(names: frozenset[str]) -> set[str] | None:
    with _lock:
        if len(_FIELD_SETS) >= _MAX_FIELD_SETS:
            return None
        return _FIELD_SETS.setdefault(names, set(names))


def compact(obj: BaseModel) -> None:
    """Shrink ``obj`` and every model inside it, in place and values unchanged (see the module);
    only for models that will not be changed afterwards."""
    set_attribute = object.__setattr__  # not pydantic's: no validation, no fields-set update
    stack = [obj]
    while stack:
        model = stack.pop()
        names = frozenset(model.__pydantic_fields_set__)
        shared = _FIELD_SETS.get(names)
        if shared is None:  # (not "or": a model with no field set has an empty, false, set)
            shared = _new_fields_set(names)
        if shared is not None:
            set_attribute(model, "__pydantic_fields_set__", shared)
        values = model.__dict__
        shape = _SHAPES.get(type(model)) or _shape(type(model))
        if tuple(values) == shape.names:  # else left as it is: serialisers follow its order
            rebuilt = shape.template.copy()
            rebuilt.update(values)  # the same keys: values replaced, key table still shared
            set_attribute(model, "__dict__", rebuilt)
        for name in shape.nested:
            value: Any = values.get(name)
            kind = type(value)
            if kind is list or kind is dict:
                items = value.values() if kind is dict else value
                stack.extend(item for item in items if _is_model(type(item)))
            elif value is not None and _is_model(kind):
                stack.append(value)


def _is_model(cls: type) -> bool:
    # Not isinstance(value, BaseModel): pydantic's metaclass answers that in Python, slowly.
    return cls in _SHAPES or issubclass(cls, BaseModel)
