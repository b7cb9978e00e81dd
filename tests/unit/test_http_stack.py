"""One HTTP stack (issue #11): every server of the product is plain ASGI on uvicorn, through
``controller.asgi``; no web framework and no second hand-rolled server beside it."""

from __future__ import annotations

from tests.unit.test_import_rules import ALLOWED, ROOT, imported_modules

#: Server-side HTTP the product does not use (clients such as httpx are fine).
OTHER_STACKS = ("fastapi", "starlette", "http.server", "wsgiref", "socketserver", "aiohttp")


def _imports() -> list[tuple[str, int, str]]:
    found = []
    for package in sorted(ALLOWED):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            found.extend((relative, line, module) for line, module in imported_modules(path))
    return found


def test_no_other_http_server_stack() -> None:
    offending = [
        f"{path}:{line} imports {module}"
        for path, line, module in _imports()
        if any(module == name or module.startswith(name + ".") for name in OTHER_STACKS)
    ]
    assert offending == []


def test_only_controller_asgi_runs_uvicorn() -> None:
    users = {path for path, _, module in _imports() if module.split(".")[0] == "uvicorn"}
    assert users == {"controller/asgi.py"}
