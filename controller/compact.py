"""Shrinking validated models that will not change: what the informer does to each model it
caches.

Where it sits: between decoding and the informer cache (``controller.cache``), the place a
process holds the most models (one per object of every watched kind). A small pydantic model
costs far more than its data: beside its values it carries

* ``__pydantic_fields_set__``, a Python set of its own (728 bytes for five names), and
* ``__dict__``, which pydantic-core builds as an ordinary dict holding a key table of its own.

:func:`compact` replaces the first by one set shared by every model that set the same field
names, and rebuilds the second attribute by attribute, which makes CPython give it the key
table every instance of the class shares. Values stay exactly as they were (the same objects),
so equality, dumps, copies and reads are unchanged; an Instance of ten models shrinks from
about 11 KB to 5 KB.

Only for models nobody changes: pydantic adds a field's name to the fields set when the field
is assigned, so a compacted model changed afterwards would mark that field as set in every
model sharing its set (nothing reads the sets: no ``exclude_unset`` anywhere). Copies
(``clone``, ``model_copy``) get sets and dicts of their own and may be changed freely.
"""

from __future__ import annotations

import threading
from typing import Any, get_args

from pydantic import BaseModel

__all__ = ["compact"]

#: The shared fields set of every distinct set of field names. The kinds' shapes give a few
#: hundred at most; past the bound, models keep their own.
_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_MAX_FIELD_SETS = 4096
#: Per model class, the fields whose annotation can hold a model (directly, or as the items of
#: a list or dict): the only values :func:`compact` looks into.
_NESTED: dict[type[BaseModel], tuple[str, ...]] = {}
_lock = threading.Lock()


def _holds_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in get_args(annotation))


def _nested_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    fields = cls.model_fields
    names = tuple(name for name, info in fields.items() if _holds_model(info.annotation))
    with _lock:
        return _NESTED.setdefault(cls, names)


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
        cls = type(model)
        names = frozenset(model.__pydantic_fields_set__)
        shared = _FIELD_SETS.get(names) or _new_fields_set(names)
        if shared is not None:
            set_attribute(model, "__pydantic_fields_set__", shared)
        values = model.__dict__
        rebuilt = cls.__new__(cls)
        for name, value in values.items():
            set_attribute(rebuilt, name, value)
        if len(rebuilt.__dict__) == len(values):  # else a descriptor took a name: keep as is
            set_attribute(model, "__dict__", rebuilt.__dict__)
        nested = _NESTED.get(cls)
        for name in _nested_fields(cls) if nested is None else nested:
            value = values.get(name)
            if isinstance(value, list):
                stack.extend(item for item in value if isinstance(item, BaseModel))
            elif isinstance(value, dict):
                stack.extend(item for item in value.values() if isinstance(item, BaseModel))
            elif isinstance(value, BaseModel):
                stack.append(value)
