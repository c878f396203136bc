"""The smtpcore command line (placeholder until the CLI lands)."""

from __future__ import annotations


def main() -> None:
    """Entry point."""
    raise SystemExit("smtpcore: the command line is not built yet")
