"""The documentation site's examples run, as written, so that they cannot rot.

How examples in ``docs/`` must be written for this test (``make docs`` builds
the site from the same files):

* Every fenced block opened with exactly ```` ```python ```` runs, top to
  bottom, in a fresh namespace, outside any event loop (a block calls
  ``asyncio.run``/``trio.run`` itself). A block preceded by the line
  ``<!-- docs-test: continue -->`` runs in the namespace of the block
  before it on the same page instead, so that a page can explain a program
  piece by piece. Use ```` ```text ```` or ```` ```sh ```` for what is not
  an example.
* Connect to ``"localhost"`` on port ``8025``: the test replaces them with its
  own server, aiosmtpd on 127.0.0.1 offering STARTTLS and, after it, AUTH
  PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER, accepting any credentials. Its
  certificate is issued by a CA that the default TLS context trusts during
  the test (``SSL_CERT_FILE``), and ``ca.pem`` in the working directory is
  that CA. It refuses ``nobody@example.com`` with 550. A block that connects
  must deliver at least one message.
* Each block runs in a temporary directory holding ``message.eml`` and
  ``client.pem`` (a client certificate and its key, from the same CA).
* Every ``$ smtpcore ...`` line of a ```` ```console ```` block runs against
  a ``smtpcore sink`` offering STARTTLS and AUTH for ``alice`` (password in
  ``SMTPCORE_AUTH_PASSWORD``), in a directory with ``ca.pem``, ``outbox/``
  (three ``.eml`` files), ``report.pdf``, ``people.csv`` and
  ``welcome.txt``. What the block shows after the command must be what it
  prints (stdout, then stderr), once every number is replaced by ``N``
  (``smtpcore sink`` lines are shown, not run).
"""

from __future__ import annotations

import ast
import base64
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import smtpcore.adapters
import smtpcore.testing
from aiosmtpd.smtp import SMTP, AuthResult
from servers import RecordingHandler, SMTPServer, TLSMaterial

import smtpcore

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONTINUE_MARK = "<!-- docs-test: continue -->"
_PYTHON = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_CONSOLE = re.compile(r"^```console[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


# -- the Python examples -----------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """A page's Python blocks that share one namespace, in order."""

    page: Path
    line: int
    blocks: tuple[tuple[int, str], ...]

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def code(self) -> str:
        return "\n".join(code for _, code in self.blocks)


def python_examples() -> list[Example]:
    examples: list[Example] = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        current: list[tuple[int, str]] = []
        for match in _PYTHON.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            if before.strip() == CONTINUE_MARK:
                assert current, f"{page}:{line}: nothing to continue"
            elif current:
                examples.append(Example(page, current[0][0], tuple(current)))
                current = []
            current.append((line, match.group(1)))
        if current:
            examples.append(Example(page, current[0][0], tuple(current)))
    return examples


PYTHON_EXAMPLES = python_examples()


#: The recipient the docs' server refuses, for the examples about refusals.
REFUSED = {"nobody@example.com": "550 5.1.1 No such user here"}


class OAuthHandler(RecordingHandler):
    """The recording handler, also offering XOAUTH2 and OAUTHBEARER (any token).

    aiosmtpd takes every ``auth_*`` attribute of its handler for a SASL
    mechanism; the bearer tokens seen are kept in ``tokens``. It refuses
    ``nobody@example.com`` (:data:`REFUSED`).
    """

    def __init__(self) -> None:
        super().__init__(refuse_rcpt=dict(REFUSED))
        self.tokens: list[str] = []

    async def _bearer(self, server: SMTP, args: list[str]) -> AuthResult:
        response = args[1] if len(args) > 1 else None
        if response is None:
            challenged = await server.challenge_auth("")
            if not isinstance(challenged, bytes):
                return AuthResult(success=False)
            raw = challenged
        else:
            raw = base64.b64decode(response)
        fields = raw.decode("utf-8", "replace").split("\x01")
        token = next((f[len("auth=Bearer ") :] for f in fields if f.startswith("auth=Bearer ")), "")
        self.tokens.append(token)
        return AuthResult(success=bool(token), handled=False)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args)


def loopback_only(real: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in ("127.0.0.1", "localhost", None):
            raise AssertionError(f"a docs example resolves {name!r}: use 'localhost'")
        return real(host, *args, **kwargs)

    return getaddrinfo


@pytest.fixture(scope="module")
def docs_tls() -> TLSMaterial:
    return TLSMaterial.create()


@pytest.fixture
def docs_server(docs_tls: TLSMaterial) -> Iterator[SMTPServer]:
    server = SMTPServer(mode="starttls", tls=docs_tls, auth=True, handler=OAuthHandler())
    with server:
        yield server


@pytest.mark.parametrize("example", PYTHON_EXAMPLES, ids=[e.name for e in PYTHON_EXAMPLES])
def test_python_example(
    example: Example,
    docs_server: SMTPServer,
    docs_tls: TLSMaterial,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca_file = tmp_path / "ca.pem"
    docs_tls.ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.setattr(socket, "getaddrinfo", loopback_only(socket.getaddrinfo))
    work = tmp_path / "cwd"
    work.mkdir()
    shutil.copy(ca_file, work / "ca.pem")
    client = docs_tls.ca.issue_cert("client.example.org")
    client.private_key_and_cert_chain_pem.write_to_path(str(work / "client.pem"))
    (work / "message.eml").write_bytes(
        b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: from a file\r\n\r\nhi\r\n"
    )
    monkeypatch.chdir(work)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for line, block in example.blocks:
        code = re.sub(r"([\"'])localhost\1", '"127.0.0.1"', block)
        code = re.sub(r"\b8025\b", str(docs_server.port), code)
        exec(compile(code, f"{example.page}:{line}", "exec"), namespace)
    output = capsys.readouterr().out
    if re.search(r"([\"'])localhost\1", example.code):
        assert docs_server.messages, f"the example delivered nothing; it printed:\n{output}"


def test_python_examples_are_found() -> None:
    # Not vacuous: the guides have examples, and every quickstart one.
    found = {e.page.relative_to(DOCS).as_posix() for e in PYTHON_EXAMPLES}
    for page in ("quickstart/blocking.md", "quickstart/asyncio.md", "quickstart/trio.md"):
        assert page in found
    assert len(PYTHON_EXAMPLES) >= 15


# -- the command-line examples -----------------------------------------------------------


@dataclass
class ConsoleExample:
    page: Path
    line: int
    command: str
    shown: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def console_examples() -> list[ConsoleExample]:
    examples: list[ConsoleExample] = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for match in _CONSOLE.finditer(text):
            first = text.count("\n", 0, match.start()) + 2
            current: ConsoleExample | None = None
            for offset, line in enumerate(match.group(1).splitlines()):
                if line.startswith("$ "):
                    current = ConsoleExample(page, first + offset, line[2:])
                    examples.append(current)
                elif current is not None:
                    current.shown.append(line)
    return examples


CONSOLE_EXAMPLES = [e for e in console_examples() if not e.command.startswith("smtpcore sink")]
PASSWORD = "correct horse"


def _shape(line: str) -> str:
    return re.sub(r"\d+(?:\.\d+)?", "N", line.rstrip())


def _console_workdir(path: Path, ca_pem: Path) -> None:
    shutil.copy(ca_pem, path / "ca.pem")
    outbox = path / "outbox"
    outbox.mkdir()
    for n in (1, 2, 3):
        (outbox / f"m{n}.eml").write_bytes(
            f"From: alice@example.com\r\nTo: bob{n}@example.com\r\n"
            f"Subject: note {n}\r\n\r\nhello {n}\r\n".encode()
        )
    (path / "report.pdf").write_bytes(b"%PDF-1.4 not really\n")
    (path / "people.csv").write_text("email,name\nann@example.org,Ann\nbob@example.org,Bob\n")
    (path / "welcome.txt").write_text(
        "From: news@example.com\nSubject: Welcome, $name\n\nHello $name, welcome aboard.\n"
    )


@pytest.mark.parametrize("example", CONSOLE_EXAMPLES, ids=[e.name for e in CONSOLE_EXAMPLES])
def test_console_example(example: ConsoleExample, tmp_path: Path) -> None:
    from smtpcore.cli.sink import Sink

    with Sink(starttls=True, auth=("alice", PASSWORD)) as sink:
        assert sink.ca_pem_path is not None
        _console_workdir(tmp_path, sink.ca_pem_path)
        command = example.command.replace("localhost:8025", f"127.0.0.1:{sink.port}")
        argv = shlex.split(command)
        assert argv[0] == "smtpcore", example.command
        env = {"NO_COLOR": "1", "SMTPCORE_AUTH_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}
        done = subprocess.run(
            [sys.executable, "-m", "smtpcore", *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    printed = [
        _shape(line.replace(f"127.0.0.1:{sink.port}", "localhost:8025"))
        for line in done.stdout.splitlines() + done.stderr.splitlines()
    ]
    assert printed == [_shape(line) for line in example.shown], done.stderr
    if done.returncode != 0:
        assert any(line.startswith("smtpcore: ") for line in example.shown), done.stderr


def test_the_cli_guide_runs_each_command() -> None:
    commands = {shlex.split(e.command)[1] for e in console_examples()}
    assert {"send", "probe", "bulk", "sink"} <= commands


# -- the reference, the words, the supported Pythons -------------------------------------


def _documented(page: str) -> set[str]:
    text = (DOCS / "reference" / page).read_text(encoding="utf-8")
    return set(re.findall(r"^\.\. auto(?:class|function|data|exception):: (\S+)", text, re.M))


def test_the_reference_documents_every_public_name() -> None:
    core = _documented("core.md")
    missing = sorted(set(smtpcore.__all__) - core)
    assert not missing, f"add to docs/reference/core.md: {missing}"
    assert not core - set(smtpcore.__all__), "docs/reference/core.md names what is not public"
    adapters = {f"smtpcore.adapters.{n}" for n in smtpcore.adapters.__all__}
    assert adapters <= {f"smtpcore.adapters.{n}" for n in _documented("adapters.md")}
    text = (DOCS / "reference" / "testing.md").read_text(encoding="utf-8")
    assert ".. automodule:: smtpcore.testing" in text


# Insider words: what the library was first modelled on is called by its name
# (POE::Component::Client::SMTP) where the comparison helps, never "the seed".
_INSIDER = re.compile(r"\bseed (module|'s)\b|\bthe seed\b|\bseed[\u2019]s\b", re.IGNORECASE)


def _words_of(path: Path) -> Iterator[tuple[int, str]]:
    yield from enumerate(path.read_text(encoding="utf-8").splitlines(), 1)


def test_no_insider_words_in_readme_docs_or_cli() -> None:
    files = [ROOT / "README.md", *pages(), *sorted((ROOT / "src" / "cli").glob("*.py"))]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in _words_of(path)
        if _INSIDER.search(line)
    ]
    assert not found, "\n".join(found)


def _noxfile_pythons() -> list[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PYTHONS" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(v) for v in value]
    raise AssertionError("noxfile.py has no PYTHONS list")


def test_supported_pythons_agree() -> None:
    # pyproject.toml read as text: tomllib is not in Python 3.10.
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    classified = re.findall(r'^\s*"Programming Language :: Python :: (3\.\d+)",$', pyproject, re.M)
    pythons = _noxfile_pythons()
    assert classified == pythons
    assert f'requires-python = ">={pythons[0]}"' in pyproject
    # The version is written once, in src/smtpcore/__init__.py.
    project = pyproject.split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    assert 'dynamic = ["version"]' in project
    assert not re.search(r"^version = ", project, re.M)
    assert 'version = { attr = "smtpcore.__version__" }' in pyproject
