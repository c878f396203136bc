"""smtpcore: a sans-IO SMTP client.

The core is a pure state machine: it consumes server bytes and produces the
bytes to write and typed events, with no sockets, event loop, threads, clocks
or file I/O. Adapters for blocking sockets, asyncio and trio live in
:mod:`smtpcore.adapters`.

Two layers:

* :class:`Session`: whole conversations (greeting, EHLO, STARTTLS policy,
  AUTH, pipelined transactions, bodies). Drive it with ``next_action()``.
* :class:`Connection`: the protocol layer underneath (commands out, replies
  in, each reply bound to its command), for tools that sequence commands
  themselves.
"""

from __future__ import annotations

from ._auth import MECHANISMS as MECHANISMS
from ._auth import Credentials as Credentials
from ._auth import OAuth2Token as OAuth2Token
from ._auth import SASLMechanism as SASLMechanism
from ._auth import choose_mechanism as choose_mechanism
from ._auth import decode_challenge as decode_challenge
from ._auth import encode_response as encode_response
from ._auth import make_mechanism as make_mechanism
from ._commands import Auth as Auth
from ._commands import AuthCancel as AuthCancel
from ._commands import AuthResponse as AuthResponse
from ._commands import Bdat as Bdat
from ._commands import BodyType as BodyType
from ._commands import Command as Command
from ._commands import Data as Data
from ._commands import Ehlo as Ehlo
from ._commands import EndOfData as EndOfData
from ._commands import Expn as Expn
from ._commands import Helo as Helo
from ._commands import Lhlo as Lhlo
from ._commands import Mail as Mail
from ._commands import Noop as Noop
from ._commands import Notify as Notify
from ._commands import Quit as Quit
from ._commands import RawCommand as RawCommand
from ._commands import Rcpt as Rcpt
from ._commands import Ret as Ret
from ._commands import Rset as Rset
from ._commands import StartTLS as StartTLS
from ._commands import Vrfy as Vrfy
from ._commands import validate_domain as validate_domain
from ._commands import validate_mailbox as validate_mailbox
from ._commands import xtext_decode as xtext_decode
from ._commands import xtext_encode as xtext_encode
from ._config import OutgoingMessage as OutgoingMessage
from ._config import QuitAfter as QuitAfter
from ._config import SessionConfig as SessionConfig
from ._config import TLSPolicy as TLSPolicy
from ._connection import NEED_DATA as NEED_DATA
from ._connection import Connection as Connection
from ._connection import ConnectionClosed as ConnectionClosed
from ._connection import ReplyReceived as ReplyReceived
from ._errors import AuthenticationError as AuthenticationError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import ConnectionLostError as ConnectionLostError
from ._errors import InvalidInputError as InvalidInputError
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import MessageContentError as MessageContentError
from ._errors import MessageSourceError as MessageSourceError
from ._errors import PermanentReplyError as PermanentReplyError
from ._errors import ProtocolError as ProtocolError
from ._errors import RecipientsRefusedError as RecipientsRefusedError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import ReplyError as ReplyError
from ._errors import SMTPError as SMTPError
from ._errors import SMTPTimeoutError as SMTPTimeoutError
from ._errors import Stage as Stage
from ._errors import TemporaryReplyError as TemporaryReplyError
from ._errors import TLSError as TLSError
from ._errors import TLSRequiredError as TLSRequiredError
from ._events import Action as Action
from ._events import Authenticated as Authenticated
from ._events import Close as Close
from ._events import CommandCompleted as CommandCompleted
from ._events import Direction as Direction
from ._events import Event as Event
from ._events import GreetingReceived as GreetingReceived
from ._events import Idle as Idle
from ._events import MessageAccepted as MessageAccepted
from ._events import MessageFailed as MessageFailed
from ._events import MessageProbed as MessageProbed
from ._events import MessageResult as MessageResult
from ._events import NeedBody as NeedBody
from ._events import Read as Read
from ._events import RecipientResult as RecipientResult
from ._events import RecipientState as RecipientState
from ._events import RecipientStatus as RecipientStatus
from ._events import ServerReady as ServerReady
from ._events import ServiceClosing as ServiceClosing
from ._events import SessionClosed as SessionClosed
from ._events import StartTLSAction as StartTLSAction
from ._events import TLSEstablished as TLSEstablished
from ._events import TranscriptEntry as TranscriptEntry
from ._events import Write as Write
from ._extensions import Capabilities as Capabilities
from ._message import BodyEncoder as BodyEncoder
from ._message import BodyInfo as BodyInfo
from ._message import EncodeMode as EncodeMode
from ._message import scan_body as scan_body
from ._replies import Reply as Reply
from ._replies import ReplyParser as ReplyParser
from ._replies import printable as printable
from ._session import Phase as Phase
from ._session import Session as Session

__version__ = "0.1.0"

__all__ = [
    "MECHANISMS",
    "NEED_DATA",
    "Action",
    "Auth",
    "AuthCancel",
    "AuthResponse",
    "Authenticated",
    "AuthenticationError",
    "Bdat",
    "BodyEncoder",
    "BodyInfo",
    "BodyType",
    "Capabilities",
    "Close",
    "Command",
    "CommandCompleted",
    "ConfigurationError",
    "Connection",
    "ConnectionClosed",
    "ConnectionLostError",
    "Credentials",
    "Data",
    "Direction",
    "Ehlo",
    "EncodeMode",
    "EndOfData",
    "Event",
    "Expn",
    "GreetingReceived",
    "Helo",
    "Idle",
    "InvalidInputError",
    "Lhlo",
    "LocalProtocolError",
    "Mail",
    "MessageAccepted",
    "MessageContentError",
    "MessageFailed",
    "MessageProbed",
    "MessageResult",
    "MessageSourceError",
    "NeedBody",
    "Noop",
    "Notify",
    "OAuth2Token",
    "OutgoingMessage",
    "PermanentReplyError",
    "Phase",
    "ProtocolError",
    "Quit",
    "QuitAfter",
    "RawCommand",
    "Rcpt",
    "Read",
    "RecipientResult",
    "RecipientState",
    "RecipientStatus",
    "RecipientsRefusedError",
    "RemoteProtocolError",
    "Reply",
    "ReplyError",
    "ReplyParser",
    "ReplyReceived",
    "Rset",
    "Ret",
    "SASLMechanism",
    "SMTPError",
    "SMTPTimeoutError",
    "ServerReady",
    "ServiceClosing",
    "Session",
    "SessionClosed",
    "SessionConfig",
    "Stage",
    "StartTLS",
    "StartTLSAction",
    "TLSEstablished",
    "TLSError",
    "TLSRequiredError",
    "TLSPolicy",
    "TemporaryReplyError",
    "TranscriptEntry",
    "Vrfy",
    "Write",
    "__version__",
    "choose_mechanism",
    "decode_challenge",
    "encode_response",
    "make_mechanism",
    "printable",
    "scan_body",
    "validate_domain",
    "validate_mailbox",
    "xtext_decode",
    "xtext_encode",
]
