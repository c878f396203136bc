"""A private Exim 4 on a high loopback port, for the interop tests.

Exim keeps a transaction open after a refused BDAT (RFC 3030 4.2 lets it),
where Postfix resets it: the server of issue 11's first bug. Debian's
``exim4-daemon-light`` cannot be installed beside Postfix, so
scripts/exim-for-tests.sh unpacks its binary into a directory of its own;
:func:`exim_binary` finds it there (or ``SMTPCORE_EXIM``, or a system
Exim).

The daemon runs in the foreground from its own directory (configuration,
spool, logs) and only queues (``queue_only``: nothing is delivered, every
accepted message stays in the spool, where the tests read it back with its
envelope). It offers PIPELINING, CHUNKING and STARTTLS (a trustme
certificate, :class:`servers.TLSMaterial`), and refuses:

* at RCPT, the local parts ``reject`` and ``nosuch`` (550) and ``tempfail``
  (451);
* after the data, a message with an ``X-Refuse`` header (550), for every
  recipient.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from daemons import ForegroundDaemon
from servers import LOOPBACK, TLSMaterial

#: Where scripts/exim-for-tests.sh puts the binary.
UNPACKED: Final = Path("/opt/smtpcore-exim/usr/sbin/exim4")
#: The user Debian's Exim is built to run as (compiled in).
EXIM_USER: Final = "Debian-exim"

_CONF: Final = """\
primary_hostname = exim.test
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
pid_file_path = {dir}/exim.pid
daemon_smtp_ports = {port}
local_interfaces = {host}
chunking_advertise_hosts = *
pipelining_advertise_hosts = *
tls_advertise_hosts = *
tls_certificate = {dir}/tls/cert.pem
tls_privatekey = {dir}/tls/key.pem
queue_only = true
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data

begin acl

acl_check_rcpt:
  deny    local_parts = reject : nosuch
          message = no such user
  defer   local_parts = tempfail
          message = try again later
  accept

acl_check_data:
  deny    condition = ${{if def:h_X-Refuse:}}
          message = refused by policy
  accept
"""


def exim_binary() -> Path | None:
    """The Exim binary the tests run, or None."""
    named = os.environ.get("SMTPCORE_EXIM")
    candidates = [Path(named)] if named else [UNPACKED, Path("/usr/sbin/exim4")]
    return next((path for path in candidates if path.is_file()), None)


def exim_unavailable() -> str | None:
    """Why a private Exim cannot run here, or None."""
    if exim_binary() is None:
        return "Exim is not available (scripts/exim-for-tests.sh unpacks it; .ci/run runs it)"
    if os.geteuid() != 0:
        return "the Exim interop tests must run as root"
    try:
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        return f"the user {EXIM_USER} does not exist (scripts/exim-for-tests.sh creates it)"
    return None


@dataclass(frozen=True)
class Queued:
    """A message in Exim's spool: its envelope and the message as stored
    (Exim's own Received header first, LF line endings)."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


class EximServer(ForegroundDaemon):
    """A private Exim on 127.0.0.1 (see the module docstring)."""

    name = "Exim"
    logs = ("log/mainlog", "log/paniclog")

    def __init__(self, tls: TLSMaterial) -> None:
        super().__init__("smtpcore-exim-")
        binary = exim_binary()
        assert binary is not None, "check exim_unavailable() first"
        self.binary = binary
        self.tls = tls

    @property
    def _conf(self) -> Path:
        return self.directory / "exim.conf"

    def start(self) -> EximServer:
        """Write the configuration and start the daemon; raises RuntimeError
        (with its log) if it does not come up listening."""
        for name in ("spool", "log", "tls"):
            path = self.directory / name
            path.mkdir(mode=0o750)
            shutil.chown(path, user=EXIM_USER)
        # Exim reads its certificate as its own user, at each STARTTLS.
        for path in self.tls.write_server_files(self.directory / "tls"):
            shutil.chown(path, user=EXIM_USER)
        self._conf.write_text(
            _CONF.format(dir=self.directory, host=LOOPBACK, port=self.port), encoding="utf-8"
        )
        # -bdf: the daemon in the foreground; -odq: queue, never deliver.
        self.launch([str(self.binary), "-C", str(self._conf), "-bdf", "-odq"])
        return self

    # -- what was queued ---------------------------------------------------------------------

    def queued(self) -> list[Queued]:
        """Every message in the spool, with its envelope, oldest first."""
        found = []
        headers = sorted(
            (self.directory / "spool" / "input").glob("*-H"), key=lambda p: p.stat().st_mtime_ns
        )
        for path in headers:
            sender, recipients = _envelope(path.read_text(errors="replace"))
            message_id = path.name[: -len("-H")]
            shown = subprocess.run(
                [str(self.binary), "-C", str(self._conf), "-Mvc", message_id],
                capture_output=True,
                timeout=30,
                check=True,
            )
            found.append(Queued(sender=sender, recipients=recipients, data=shown.stdout))
        return found


def _envelope(header_file: str) -> tuple[str, tuple[str, ...]]:
    """The sender and recipients of a spool ``-H`` file: the sender on its
    third line in angle brackets; after the options (lines starting with
    ``-``) and the non-recipients tree, the recipient count, then one
    recipient per line."""
    lines = header_file.split("\n")
    sender = re.fullmatch(r"<(.*)>", lines[2])
    assert sender is not None, lines[:4]
    index = 3
    while index < len(lines) and not lines[index].isdigit():
        index += 1  # the time line, the options, the non-recipients tree
    count = int(lines[index])
    recipients = tuple(line.split(" ", 1)[0] for line in lines[index + 1 : index + 1 + count])
    return sender.group(1), recipients
