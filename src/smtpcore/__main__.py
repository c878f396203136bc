"""``python -m smtpcore``: the command line (needs ``pip install smtpcore[cli]``)."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the ``smtpcore`` command line."""
    try:
        from smtpcore.cli import main as cli_main
    except ImportError as exc:  # pragma: no cover - depends on the install
        sys.exit(f"smtpcore: the command line needs its extra: pip install 'smtpcore[cli]' ({exc})")
    cli_main()


if __name__ == "__main__":
    main()
