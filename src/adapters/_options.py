"""The typed keyword arguments of every adapter's ``send``, ``Client`` and ``Pool``.

They are written once, as :class:`ConnectOptions` and :class:`MessageOptions`
(``TypedDict`` s), and every entry point takes them as
``**options: Unpack[ConnectOptions]`` (PEP 692): ``mypy --strict`` and
editors know each name and its type, so a misspelt option is a type error
before it is a run-time one. At run time :func:`check_keywords` gives a
misspelt name a clear ``TypeError`` naming the entry point and the nearest
option, and :func:`expands` writes the options out in the
signature that ``help()`` and Sphinx show.

The defaults live in :meth:`smtpcore.adapters._common.ClientOptions.build`
and :func:`smtpcore.adapters._common.make_message`, whose parameters the
test suite checks against these dictionaries.
"""

from __future__ import annotations

import difflib
import inspect
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypedDict, TypeVar

from smtpcore import (
    BodyType,
    Credentials,
    Notify,
    OAuth2Token,
    QuitAfter,
    Ret,
    Stage,
    TLSPolicy,
)

__all__ = [
    "CONNECT_KEYS",
    "MESSAGE_KEYS",
    "MESSAGE_OPTION_KEYS",
    "ConnectOptions",
    "MessageOptions",
    "check_keywords",
    "expands",
]

F = TypeVar("F", bound=Callable[..., Any])


class ConnectOptions(TypedDict, total=False):
    """Where and how to connect: the keyword arguments that ``send``,
    ``Client`` and ``Pool`` of every adapter share (POE::Component::Client::SMTP's
    parameters, in Python terms).

    Attributes:
        timeout: seconds allowed for each stage (Timeout; default 30).
        timeouts: per-stage overrides, ``{Stage.DATA_TERMINATION: 600}`` or
            ``{"data-termination": 600}``.
        unix_path: connect to this UNIX socket instead of ``server:port``.
        bind_address, bind_port: the local address and port to connect from
            (MyHostname's address; BindPort).
        local_hostname: the name sent with EHLO/LHLO (MyHostname).
        server_hostname: the name TLS sends (SNI) and verifies the
            certificate against; default: ``server``.
        tls: ``"opportunistic"`` (default), ``"starttls"`` (required),
            ``"implicit"`` (port 465) or ``"none"``.
        ssl_context: the TLS context to use as it is.
        ca_file: PEM file of the certificate authorities to trust, added to
            the system's (ignored with ``ssl_context``).
        client_cert, client_key: PEM files of a client certificate and its
            key (the key may be in ``client_cert``).
        dangerously_skip_tls_verification: encrypt without checking who
            answers (logged as a warning; REQUIRETLS messages are refused).
        auth: ``(user, password)``, :class:`smtpcore.Credentials` or
            :class:`smtpcore.OAuth2Token` (Auth).
        auth_mechanisms: allow-list of SASL mechanisms, best first.
        allow_insecure_auth: send credentials without TLS.
        helo_fallback: fall back to HELO when EHLO gets 500/502.
        lmtp: speak LMTP (RFC 2033).
        pipelining, chunking: use PIPELINING and CHUNKING when offered.
        strict_line_endings: refuse bare CR/LF in bodies instead of fixing them.
        allow_controls: let C0 control characters other than NUL through.
        require_all_recipients: a message with any refused recipient fails.
        max_recipients: recipients per transaction; more go in further ones.
        transaction_log: keep the transcript (TransactionLog).
        log_message_data: put the message's lines in the transcript too.
        quit_after: stop early and QUIT (probing; no message data is sent).
        max_auth_steps: bound on AUTH challenge rounds.
        max_reply_line, max_reply_lines, max_reply_size: reply parser limits.
        name: the client's name in log records (Alias).
    """

    timeout: float | None
    timeouts: Mapping[Stage | str, float] | None
    unix_path: str | None
    bind_address: str | None
    bind_port: int | None
    local_hostname: str | None
    server_hostname: str | None
    tls: TLSPolicy | str
    ssl_context: ssl.SSLContext | None
    ca_file: str | None
    client_cert: str | None
    client_key: str | None
    dangerously_skip_tls_verification: bool
    auth: Credentials | OAuth2Token | tuple[str, str] | None
    auth_mechanisms: Iterable[str] | str | None
    allow_insecure_auth: bool
    helo_fallback: bool
    lmtp: bool
    pipelining: bool
    chunking: bool
    strict_line_endings: bool
    allow_controls: bool
    require_all_recipients: bool
    max_recipients: int | None
    transaction_log: bool
    log_message_data: bool
    quit_after: QuitAfter | str | None
    max_auth_steps: int
    max_reply_line: int
    max_reply_lines: int
    max_reply_size: int
    name: str | None


class MessageOptions(TypedDict, total=False):
    """Per-message keyword arguments of ``send_message`` (and the items of
    ``send_many``, beside ``sender``, ``recipients`` and the body).

    Attributes:
        smtputf8: the message needs SMTPUTF8 (RFC 6531).
        body_type: ``BODY=`` (7BIT, 8BITMIME, BINARYMIME).
        dsn_ret, dsn_envid, dsn_notify, dsn_orcpt: delivery status
            notification parameters (RFC 3461).
        requiretls: the message must only travel over verified TLS (RFC 8689).
    """

    smtputf8: bool
    body_type: BodyType | None
    dsn_ret: Ret | str | None
    dsn_envid: str | None
    dsn_notify: Iterable[Notify | str] | None
    dsn_orcpt: bool
    requiretls: bool


#: The names of :class:`ConnectOptions`.
CONNECT_KEYS: Final = frozenset(ConnectOptions.__annotations__)
#: The names of :class:`MessageOptions`.
MESSAGE_OPTION_KEYS: Final = frozenset(MessageOptions.__annotations__)
#: The keys a ``send_many`` item may have.
MESSAGE_KEYS: Final = (
    frozenset({"sender", "recipients", "message", "message_file", "file_handle"})
    | MESSAGE_OPTION_KEYS
)


def check_keywords(where: str, given: Mapping[str, object], known: frozenset[str]) -> None:
    """Raise a clear ``TypeError`` for a keyword ``where`` does not take,
    naming the nearest one it does."""
    if given.keys() <= known:
        return
    for key in given:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise TypeError(f"{where}() got an unexpected keyword argument {key!r}{hint}")


def expands(options: type) -> Callable[[F], F]:
    """Show ``**options: Unpack[...]`` as the keyword parameters it stands
    for, with their defaults, in the signature of the function decorated
    (for ``help()``, editors that run code, and Sphinx)."""

    def decorate(function: F) -> F:
        from ._common import ClientOptions, make_message  # the defaults

        signature = inspect.signature(function)
        defaults = {
            **inspect.signature(ClientOptions.build).parameters,
            **inspect.signature(make_message).parameters,
        }
        parameters = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        for key, annotation in options.__annotations__.items():
            annotation = getattr(annotation, "__forward_arg__", annotation)
            default = defaults[key].default if key in defaults else None
            parameters.append(
                inspect.Parameter(
                    key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
                )
            )
        function.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        return function

    return decorate
