"""The test matrix: the suite on every supported Python.

    nox -s tests            every supported Python found on this machine
    nox -s tests-3.12       one of them
    nox -s ends             the oldest and the newest of them (what CI runs)

Each session installs the project from its files into a fresh virtualenv
(a regular install, not an editable one, so packaging mistakes show) with
the ``test`` extra, and runs pytest (arguments after ``--`` replace the
default ones). A Python that is not installed is skipped with a message,
not an error. ``make matrix`` runs ``ends``; ``make test`` runs the whole
suite, with lint, types and coverage, on the Python of ``.venv``.
"""

from __future__ import annotations

import shutil
import subprocess

import nox

#: The supported Pythons, oldest first: the classifiers and requires-python
#: in pyproject.toml say the same (tests/test_docs.py checks it).
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

#: By default, leave out what is slow or needs a system service (Postfix,
#: redis-server for Celery): ``make test`` runs those on one Python.
DEFAULT_PYTEST_ARGS = [
    "-m",
    "not slow and not postfix and not celery",
    "-q",
    "-p",
    "no:cacheprovider",
]

nox.options.sessions = ["tests"]
# A missing interpreter is a skip with a message ("Python interpreter 3.13
# not found"), on a developer's machine and in CI alike.
nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True
# Virtualenvs under build/ (ignored by git, removed by `make clean`).
nox.options.envdir = "build/nox"


def _runs(version: str) -> bool:
    """Whether ``pythonX.Y`` is on PATH and starts (a version manager's shim
    may be on PATH for a version that is not selected)."""
    found = shutil.which(f"python{version}")
    if found is None:
        return False
    done = subprocess.run([found, "-c", ""], capture_output=True, check=False)
    return done.returncode == 0


def _found() -> list[str]:
    return [version for version in PYTHONS if _runs(version)]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite on one Python."""
    session.install(".[test]")
    session.run("python", "-m", "pytest", *(session.posargs or DEFAULT_PYTEST_ARGS))


@nox.session(python=False)
def ends(session: nox.Session) -> None:
    """The suite on the oldest and the newest supported Python found here."""
    found = _found()
    missing = [version for version in PYTHONS if version not in found]
    if missing:
        session.log(f"not installed here, skipped: Python {', '.join(missing)}")
    if not found:
        session.skip(f"none of Python {', '.join(PYTHONS)} is installed")
    for version in dict.fromkeys([found[0], found[-1]]):
        session.notify(f"tests-{version}", session.posargs)
