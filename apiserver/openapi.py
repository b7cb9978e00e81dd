"""``/openapi.json``: an OpenAPI 3.1 document generated from the pydantic models of api_types.

Where it sits: served by ``system``; read by ``skyctl explain``-like tools and by the
schemathesis test. The routes themselves are one generic dispatcher (``dispatch``), so nothing
is generated from them; this document lists every path of DESIGN §7 per kind, with the kind's
JSON Schema (wire names and field descriptions) as request and response bodies, and ``Status``
for errors.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from api_types import registry
from api_types.meta import API_VERSION
from api_types.registry import KindInfo

__all__ = ["API_ROOT", "openapi_document"]

API_ROOT = f"/apis/{API_VERSION}"
_REF = "#/components/schemas/{model}"

_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Kubernetes-style Status: every error, and the answer to a finished delete.",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"const": "Status"},
        "status": {"enum": ["Success", "Failure"]},
        "message": {"type": "string"},
        "reason": {"type": "string"},
        "code": {"type": "integer"},
        "details": {
            "type": "object",
            "properties": {
                "causes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                }
            },
        },
    },
}


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


_STRING = {"type": "string"}
_DRY_RUN = _param("dryRun", "query", {"enum": ["All"]}, "Validate and admit, but do not write.")
_LIST_PARAMS = [
    _param("labelSelector", "query", _STRING, "Kubernetes label selector, e.g. app=web,tier!=db."),
    _param(
        "fieldSelector",
        "query",
        _STRING,
        "Field selector on metadata.name, metadata.namespace, status.phase or spec.* scalars "
        "with =, == or !=, e.g. status.phase!=Running.",
    ),
    _param("limit", "query", {"type": "integer", "minimum": 0}, "Page size (0 = everything)."),
    _param("continue", "query", _STRING, "Token from the previous page's metadata.continue."),
    _param("watch", "query", {"type": "boolean"}, "Stream newline-delimited JSON events."),
    _param("resourceVersion", "query", _STRING, "With watch: stream the changes after it."),
]


def _responses(schema: dict[str, Any], code: str = "200") -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": _REF.format(model="Status")}}}}
    responses: dict[str, Any] = {
        code: {"description": "OK", "content": {"application/json": {"schema": schema}}}
    }
    for status, text in (
        ("400", "Bad request"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("404", "Not found"),
        ("409", "Conflict"),
        ("422", "Invalid"),
    ):
        responses[status] = {"description": text, **error}
    return responses


def _body(schema: dict[str, Any], *, patch: bool = False) -> dict[str, Any]:
    if patch:
        content = {"application/merge-patch+json": {"schema": {"type": "object"}}}
    else:
        content = {"application/json": {"schema": schema}, "application/yaml": {"schema": schema}}
    return {"required": True, "content": content}


def _operation(
    info: KindInfo,
    verb: str,
    responses: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    scope: str = "",
) -> dict[str, Any]:
    """One operation of a kind's paths, its id ``{verb}{Kind}{scope}`` (``createInstance``,
    ``listInstanceAllNamespaces``)."""
    operation: dict[str, Any] = {"tags": [info.kind], "operationId": f"{verb}{info.kind}{scope}"}
    if parameters is not None:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = responses
    return operation


def _kind_paths(info: KindInfo) -> dict[str, Any]:
    ref = {"$ref": _REF.format(model=info.model.__name__)}
    listing = {
        "type": "object",
        "properties": {"kind": {"type": "string"}, "items": {"type": "array", "items": ref}},
    }
    ns_param = [_param("namespace", "path", _STRING, "Namespace.")] if info.namespaced else []
    name_param = [_param("name", "path", _STRING, "Object name.")]
    base = (
        f"{API_ROOT}/namespaces/{{namespace}}/{info.plural}"
        if info.namespaced
        else (f"{API_ROOT}/{info.plural}")
    )
    item = {
        "parameters": ns_param + name_param,
        "get": _operation(info, "get", _responses(ref)),
        "put": _operation(info, "replace", _responses(ref), parameters=[_DRY_RUN], body=_body(ref)),
        "patch": _operation(
            info, "patch", _responses(ref), parameters=[_DRY_RUN], body=_body(ref, patch=True)
        ),
        "delete": _operation(info, "delete", _responses(ref), parameters=[_DRY_RUN]),
    }
    paths: dict[str, Any] = {
        base: {
            "parameters": ns_param,
            "get": _operation(info, "list", _responses(listing), parameters=_LIST_PARAMS),
            "post": _operation(
                info, "create", _responses(ref, "201"), parameters=[_DRY_RUN], body=_body(ref)
            ),
        },
        f"{base}/{{name}}": item,
    }
    if info.has_status:
        status_item = {k: v for k, v in item.items() if k in ("parameters", "get", "put", "patch")}
        paths[f"{base}/{{name}}/status"] = {
            key: ({**value, "operationId": value["operationId"] + "Status"}
                  if isinstance(value, dict) else value)
            for key, value in status_item.items()
        }  # fmt: skip
    if info.namespaced:
        paths[f"{API_ROOT}/{info.plural}"] = {
            "get": _operation(
                info, "list", _responses(listing), parameters=_LIST_PARAMS, scope="AllNamespaces"
            )
        }
    return paths


@cache
def openapi_document(version: str) -> dict[str, Any]:
    kinds = registry.all_kinds()
    _, defs = models_json_schema(
        [(info.model, "validation") for info in kinds], by_alias=True, ref_template=_REF
    )
    schemas = {**defs["$defs"], "Status": _STATUS_SCHEMA}
    paths: dict[str, Any] = {}
    for info in kinds:
        paths.update(_kind_paths(info))
    return {
        "openapi": "3.1.0",
        "info": {"title": "skybroker", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
