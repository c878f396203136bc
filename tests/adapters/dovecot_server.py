"""A private Dovecot LMTP server on a high loopback port, for the interop tests.

Dovecot 2.3 (Debian's ``dovecot-lmtpd``) runs in the foreground from its
own directory: configuration, runtime files, log and mailboxes all live
there, nothing of the system's is read or changed. Its LMTP service offers
PIPELINING, CHUNKING and STARTTLS (a trustme certificate,
:class:`servers.TLSMaterial`), and answers the end of data once per accepted
recipient (RFC 2033 4.2), as real LMTP servers do:

* the users ``rcpt1``, ``rcpt2`` and ``full`` (any domain) exist; any other
  recipient is refused at RCPT (``550 5.1.1 ... User doesn't exist``);
* ``full`` has a one-octet quota: the message is refused for that recipient
  after the data (``552 5.2.2 ... Quota exceeded``) while the others get it;
* every accepted message is stored in the recipient's Maildir, with the
  envelope sender as its ``Return-Path``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from daemons import ForegroundDaemon
from servers import LOOPBACK, TLSMaterial

DOVECOT: Final = Path("/usr/sbin/dovecot")
LMTP: Final = Path("/usr/lib/dovecot/lmtp")
#: The users that exist, and the one whose mailbox is full.
USERS: Final = ("rcpt1", "rcpt2", "full")
FULL: Final = "full"
_NOBODY: Final = 65534

_CONF: Final = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = lmtp
listen = {host}
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
first_valid_uid = 1
mail_location = maildir:~/Maildir
# LMTP logs in with the whole address; the users are local parts.
auth_username_format = %Ln
mail_plugins = $mail_plugins quota
plugin {{
  quota = maildir:User quota
}}
passdb {{
  driver = passwd-file
  args = {dir}/users
}}
userdb {{
  driver = passwd-file
  args = {dir}/users
}}
service lmtp {{
  inet_listener lmtp {{
    address = {host}
    port = {port}
  }}
}}
"""


def dovecot_unavailable() -> str | None:
    """Why a private Dovecot LMTP server cannot run here, or None."""
    if not DOVECOT.exists() or not LMTP.exists():
        return "Dovecot's LMTP server is not installed (apt-get install dovecot-lmtpd)"
    if os.geteuid() != 0:
        return "the Dovecot interop tests must run as root"
    return None


class DovecotServer(ForegroundDaemon):
    """A private Dovecot LMTP server on 127.0.0.1 (see the module docstring)."""

    name = "Dovecot"
    logs = ("dovecot.log",)

    def __init__(self, tls: TLSMaterial) -> None:
        super().__init__("smtpcore-dovecot-")
        self.tls = tls

    def start(self) -> DovecotServer:
        """Write the configuration and start; raises RuntimeError (with its
        log) if Dovecot does not come up listening."""
        directory = self.directory
        for name in ("run", "state"):
            (directory / name).mkdir(mode=0o755)
        mail = directory / "mail"
        mail.mkdir(mode=0o755)
        os.chown(mail, _NOBODY, _NOBODY)
        users = []
        for user in USERS:
            extra = "userdb_quota_rule=*:storage=1B" if user == FULL else ""
            users.append(f"{user}::{_NOBODY}:{_NOBODY}::{mail / user}::{extra}\n")
        (directory / "users").write_text("".join(users), encoding="utf-8")
        # Read by the master process (root) at start, for STARTTLS.
        self.tls.write_server_files(directory)
        conf = directory / "dovecot.conf"
        conf.write_text(
            _CONF.format(dir=directory, host=LOOPBACK, port=self.port), encoding="utf-8"
        )
        self.launch([str(DOVECOT), "-F", "-c", str(conf)])
        return self

    # -- what was delivered ------------------------------------------------------------------

    def delivered(self, user: str) -> list[bytes]:
        """Every message stored for ``user`` (its Maildir ``new/``), oldest first."""
        new = self.directory / "mail" / user / "Maildir" / "new"
        if not new.is_dir():
            return []
        paths = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        return [path.read_bytes() for path in paths]

    def all_delivered(self) -> dict[str, list[bytes]]:
        """What every user holds."""
        return {user: self.delivered(user) for user in USERS}
