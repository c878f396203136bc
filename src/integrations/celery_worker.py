"""A ready-made Celery app for the workers, configured from the environment.

Run a worker with::

    SMTPCORE_CELERY_BROKER=redis://queue.example.net:6379/0 \\
    SMTPCORE_SERVER=mx.example.net:587 SMTPCORE_TLS=starttls \\
    SMTPCORE_AUTH_USER=bulk SMTPCORE_AUTH_PASSWORD=... \\
    celery -A smtpcore.integrations.celery_worker worker --concurrency 4

and send with ``smtpcore bulk --celery redis://queue.example.net:6379/0`` or a
:class:`smtpcore.integrations.celery.Dispatcher`. For a project of your own,
call :func:`smtpcore.integrations.celery.register` on your app instead.

================================== ===========================================
variable                           meaning (default)
================================== ===========================================
SMTPCORE_CELERY_BROKER             the broker URL (required)
SMTPCORE_CELERY_BACKEND            the result backend URL (the broker)
SMTPCORE_CELERY_VISIBILITY_TIMEOUT seconds before a task whose worker died is
                                   delivered again (3600)
SMTPCORE_SERVER                    ``host[:port]`` to send to (localhost)
SMTPCORE_PORT                      the port, if not in SMTPCORE_SERVER
SMTPCORE_TLS                       none, opportunistic, starttls, implicit
SMTPCORE_CA_FILE                   PEM file of the CAs to trust (system's)
SMTPCORE_AUTH_USER                 user name for AUTH (none)
SMTPCORE_AUTH_PASSWORD             its password
SMTPCORE_TIMEOUT                   seconds for each step (30)
SMTPCORE_POOL_SIZE                 connections per worker process (4)
SMTPCORE_MAX_RETRIES               retries of a temporary failure (5)
SMTPCORE_RETRY_BACKOFF             first retry delay, doubled each time (30)
SMTPCORE_RETRY_BACKOFF_MAX         the longest retry delay (600)
SMTPCORE_IDEMPOTENCY_URL           Redis for the message keys (the broker's)
SMTPCORE_IDEMPOTENCY_TTL           seconds a key is remembered (a week)
================================== ===========================================
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any, Final

from smtpcore import ConfigurationError

from .celery import make_app

__all__ = ["app_from_environment"]  # and ``app``, made on first use

#: Environment variables copied as they are into ``smtpcore_*`` settings.
_PLAIN: Final = (
    "server",
    "port",
    "tls",
    "timeout",
    "pool_size",
    "max_retries",
    "retry_backoff",
    "retry_backoff_max",
    "idempotency_url",
    "idempotency_ttl",
)


def app_from_environment(environ: Mapping[str, str] = os.environ) -> Any:
    """The Celery app the ``SMTPCORE_*`` variables describe (see above)."""
    broker = environ.get("SMTPCORE_CELERY_BROKER")
    if not broker:
        raise ConfigurationError(
            "set SMTPCORE_CELERY_BROKER to the broker URL (redis://host:6379/0)"
        )
    conf: dict[str, Any] = {}
    for name in _PLAIN:
        value = environ.get(f"SMTPCORE_{name.upper()}")
        if value:
            conf[f"smtpcore_{name}"] = value
    user = environ.get("SMTPCORE_AUTH_USER")
    if user:
        password = environ.get("SMTPCORE_AUTH_PASSWORD")
        if password is None:
            raise ConfigurationError("SMTPCORE_AUTH_USER needs SMTPCORE_AUTH_PASSWORD")
        conf["smtpcore_auth"] = (user, password)
    ca_file = environ.get("SMTPCORE_CA_FILE")
    if ca_file:
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        conf["smtpcore_client_options"] = {"ssl_context": context}
    try:
        visibility = float(environ.get("SMTPCORE_CELERY_VISIBILITY_TIMEOUT") or 3600)
    except ValueError:
        raise ConfigurationError("SMTPCORE_CELERY_VISIBILITY_TIMEOUT must be a number") from None
    return make_app(
        broker,
        backend_url=environ.get("SMTPCORE_CELERY_BACKEND") or None,
        visibility_timeout=visibility,
        **conf,
    )


_app: Any = None


def __getattr__(name: str) -> Any:
    """``app``: what ``celery -A smtpcore.integrations.celery_worker`` runs,
    made from the environment on first use (importing this module alone
    needs no configuration)."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = app_from_environment()
    return _app
