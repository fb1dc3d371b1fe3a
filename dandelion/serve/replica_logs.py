"""Dandelion's log lines in the replica's own log file, beside Serve's.

Serve writes only its `ray.serve` logger to `logs/serve/replica_<app>_<deployment>_<id>.log`
(and to the worker's stderr); other loggers reach stderr only, at the root logger's level, so
the gateway's INFO lines (sessions refused, resumes refused, the error ids of errors whose
detail was hidden from the client) were nowhere an operator looks.
"""

from __future__ import annotations

import logging
import os

SERVE_LOGGER = "ray.serve"


class _ToServeLogger(logging.Handler):
    """Hands each record to Serve's logger: its handlers add the replica and request ids."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(SERVE_LOGGER).handle(record)


def log_to_replica_file(name: str = "dandelion") -> None:
    """Send logger `name` (and its children) to Serve's replica log, at INFO (DEBUG when
    $DANDELION_DEBUG is set). Call inside a replica: elsewhere Serve's logger has no file.
    Idempotent."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG if os.environ.get("DANDELION_DEBUG") else logging.INFO)
    if not any(isinstance(handler, _ToServeLogger) for handler in logger.handlers):
        logger.addHandler(_ToServeLogger())
    # Serve's logger writes to stderr too: propagating would print each line twice there.
    logger.propagate = False
