"""smtpcore with other frameworks (installed as ``smtpcore.integrations``).

Each module needs its own extra and is imported on its own:

* :mod:`smtpcore.integrations.celery` (``pip install 'smtpcore[celery]'``):
  bulk sending on Celery workers, each keeping a connection pool across
  tasks, with every message sent at most once across redeliveries.
"""
