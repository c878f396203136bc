"""Generate the blocking client from the async one: ``src/adapters/_sync_client.py``.

The client is written once, async, in ``src/adapters/_async_client.py``.
This script writes its blocking twin by rewriting tokens (``async def`` ->
``def``, ``await x`` -> ``x``, ``async with`` -> ``with``, ``Async`` names
-> ``Sync`` ones...), as httpcore does, then lays it out with ruff.
``--check`` fails when the checked-in file differs from what the script
makes (``make lint`` runs it in CI), so the two clients cannot drift.

    python scripts/unasync.py          # write the file
    python scripts/unasync.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src/adapters/_async_client.py"
TARGET = ROOT / "src/adapters/_sync_client.py"

#: (pattern, replacement), applied in order to every line.
SUBSTITUTIONS = [
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\bAsyncExitStack\b", "ExitStack"),
    (r"\bpush_async_exit\b", "push"),
    (r"\baclose\b", "close"),
    (r"Awaitable\[(\w+)\]", r"\1"),
    (r"\bAwaitable, ", ""),
    (r"\bAsync(Backend|Client|Connection|Pool|Send)\b", r"Sync\1"),
    (r"\b_async_client\b", "_sync_client"),
]

HEADER = """\
# GENERATED from _async_client.py by scripts/unasync.py: do not edit.
# Edit the async source and run `python scripts/unasync.py`; `make lint`
# fails when this file is out of date.
"""


def generate() -> str:
    lines = SOURCE.read_text().splitlines(keepends=True)
    out = []
    for line in lines:
        for pattern, replacement in SUBSTITUTIONS:
            line = re.sub(pattern, replacement, line)
        out.append(line)
    # Removing ``await`` shortens lines: ruff lays the result out as it
    # would any file, so the generated file passes ``ruff format --check``.
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(TARGET), "-"],
        input=HEADER + "".join(out),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return formatted.stdout


def main(argv: list[str]) -> int:
    made = generate()
    if "--check" in argv:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != made:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                made.splitlines(keepends=True),
                str(TARGET.relative_to(ROOT)),
                "generated",
            )
            sys.stdout.writelines(diff)
            print(f"{TARGET.relative_to(ROOT)} is out of date: run python scripts/unasync.py")
            return 1
        return 0
    TARGET.write_text(made)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
