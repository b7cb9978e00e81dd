"""structlog set-up: JSON lines in production, key=value on a terminal (DESIGN §4).

Where it sits: beside the whole pipeline (etcd watch → informer cache → handler → workqueue →
workers → reconcile → status write → events/history); every module logs through
``structlog.get_logger()``. The worker loop binds ``kind``, ``namespace``, ``name`` and
``reconcile_id`` with ``structlog.contextvars`` around each reconcile, so every line a
reconciler (or a provider it calls) logs on that thread carries them without passing a logger
around. Standard-library logging (libraries such as libcloud and grpc) is routed through the
same renderer so one process writes one format.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor

__all__ = ["configure_logging"]


def configure_logging(json: bool | None = None, level: str = "info") -> None:
    """Configure structlog and stdlib logging for the process.

    ``json=None`` chooses by the output: JSON when stdout is not a TTY (a container, a systemd
    unit, a file), key=value with colours when a person is watching.
    """
    if json is None:
        json = not sys.stdout.isatty()
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stdout.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    # A traceback is a field in JSON (one line per record); the console renders it itself.
    # Never with local variables: a frame may hold cloud credentials.
    exception_processors: list[Processor] = (
        [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        ]
        if json
        else []
    )
    structlog.configure(
        processors=[
            # First: an event below the level is dropped before the others run (merging the
            # context, stamping the time): a debug line per reconcile costs nothing at info.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_processors,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
