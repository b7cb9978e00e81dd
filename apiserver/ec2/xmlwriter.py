"""The EC2 wire format out: an action's answer and an error, as XML documents.

Where it sits: the last step of the EC2 front door (``routes``). An action returns
:data:`Fields` — an ordered mapping of element names to values — and :func:`response_document`
wraps it in ``<{Action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`` with the
``<requestId>`` first, as EC2 does. Values render as:

- ``str``/``int``/``float`` → text; ``bool`` → ``true``/``false``; ``None`` → left out;
- a mapping → nested elements;
- a list → one ``<item>`` per entry (EC2's ``…Set``/``…Info`` lists), entries being mappings
  or scalars.

Errors use EC2's own shape, without a namespace::

    <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>

ElementTree escapes every text, so names and messages cannot break the document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Union
from xml.etree import ElementTree

__all__ = ["EC2_NAMESPACE", "Fields", "Value", "error_document", "response_document"]

EC2_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

Value = Union[str, int, float, bool, None, "Fields", Sequence["Value"]]
#: An action's answer (and any nested element): element name → value.
Fields = Mapping[str, Value]


def _fill(element: ElementTree.Element, value: Value) -> None:
    if isinstance(value, bool):
        element.text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        element.text = str(value)
    elif isinstance(value, Mapping):
        for name, child in value.items():
            if child is not None:
                _fill(ElementTree.SubElement(element, name), child)
    elif value is not None:
        for entry in value:
            _fill(ElementTree.SubElement(element, "item"), entry)


def _serialise(root: ElementTree.Element) -> bytes:
    text: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=False)
    return _DECLARATION + text


def response_document(action: str, request_id: str, fields: Fields) -> bytes:
    """``<{action}Response>`` in EC2's namespace: ``requestId``, then ``fields`` in order."""
    root = ElementTree.Element(f"{action}Response", {"xmlns": EC2_NAMESPACE})
    _fill(root, {"requestId": request_id, **fields})
    return _serialise(root)


def error_document(code: str, message: str, request_id: str) -> bytes:
    """EC2's error answer (the module docstring's shape)."""
    root = ElementTree.Element("Response")
    _fill(
        root,
        {"Errors": {"Error": {"Code": code, "Message": message}}, "RequestID": request_id},
    )
    return _serialise(root)
