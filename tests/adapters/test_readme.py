"""The README's Python examples run, as written, against a real server.

How README examples must be written for this test:

* Only fenced blocks opened with exactly ```` ```python ```` are run, each on
  its own, top to bottom, in a fresh namespace, outside any event loop (a
  block calls ``asyncio.run``/``trio.run`` itself). Use ```` ```console ````,
  ```` ```sh ```` or ```` ```text ```` for anything else.
* Connect to ``"localhost"`` on port ``8025`` (the aiosmtpd default): the
  test replaces the string literal ``"localhost"`` (or ``'localhost'``) with
  ``"127.0.0.1"`` and the number ``8025`` with its own server's port. Any other host name fails the
  test: name resolution is limited to loopback here, nothing leaves the machine.
* The server is aiosmtpd offering STARTTLS and, after it, AUTH PLAIN and
  LOGIN accepting any user name and password; its certificate is issued for
  127.0.0.1 by a CA that the default TLS context trusts during the test
  (``SSL_CERT_FILE``). So ``tls="none"``, ``"opportunistic"`` and
  ``"starttls"`` all work, with or without ``auth=``. Implicit TLS (port 465)
  does not: mark such a block as skipped.
* The block runs in a temporary directory holding ``message.eml`` (a small
  valid message), for examples that use ``message_file="message.eml"``.
* A block that uses ``smtpcore.adapters`` must deliver at least one message
  (an example whose callback swallowed a failure would otherwise pass).
* To leave a block out, put ``<!-- readme-test: skip -->`` on the line just
  before its opening fence, and say why in the prose.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import SMTPServer, TLSMaterial

README = Path(__file__).resolve().parents[2] / "README.md"
SKIP_MARK = "<!-- readme-test: skip -->"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    line: int
    code: str
    skipped: bool


def readme_examples() -> list[Example]:
    if not README.exists():
        return []
    text = README.read_text(encoding="utf-8")
    examples = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        examples.append(
            Example(line=line, code=match.group(1), skipped=before.strip() == SKIP_MARK)
        )
    return examples


EXAMPLES = readme_examples()


def loopback_only(real: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in ("127.0.0.1", "localhost", None):
            raise AssertionError(
                f"README example resolves {name!r}: examples must use server='localhost'"
            )
        return real(host, *args, **kwargs)

    return getaddrinfo


@pytest.mark.skipif(not EXAMPLES, reason="README.md has no ```python blocks yet")
@pytest.mark.parametrize("example", EXAMPLES, ids=[f"README.md:{e.line}" for e in EXAMPLES] or None)
def test_readme_example(
    example: Example,
    start_smtpd: Callable[..., SMTPServer],
    tls: TLSMaterial,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if example.skipped:
        pytest.skip(f"marked {SKIP_MARK}")
    server = start_smtpd(mode="starttls", tls=tls, auth=True)
    ca_file = tmp_path / "ca.pem"
    tls.ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.setattr(socket, "getaddrinfo", loopback_only(socket.getaddrinfo))
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "message.eml").write_bytes(
        b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: from a file\r\n\r\nhi\r\n"
    )
    monkeypatch.chdir(work)

    code = re.sub(r"([\"'])localhost\1", '"127.0.0.1"', example.code)
    code = re.sub(r"\b8025\b", str(server.port), code)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    exec(compile(code, f"{README}:{example.line}", "exec"), namespace)

    output = capsys.readouterr().out
    if "smtpcore.adapters" in example.code:
        assert server.messages, f"the example delivered nothing; it printed:\n{output}"
