"""S4: the core alone against the equivalent code paths of the peers.

* ``S4-encode``: canonicalise line endings and dot-stuff a body with many
  lines starting with ``.`` and some bare LFs, then terminate it. smtpcore's
  :class:`BodyEncoder` (whole, and fed in 64 KiB chunks as for a streamed
  file) and ``scan_body`` + ``encode_scanned`` (what the session does for an
  in-memory message) against smtplib's
  ``_fix_eols`` + ``_quote_periods`` (its path for a str message) and
  aiosmtplib's ``normalize_message_line_endings`` + ``PERIOD_REGEX``. The
  outputs are checked to be identical before timing.
* ``S4-parse``: a pipelined reply stream (2,000 transactions of MAIL, 3 RCPT,
  DATA and end-of-data replies, in the chunks a pipelining server sends them)
  through smtpcore's :class:`ReplyParser`, smtplib's ``getreply`` (reading
  from an in-memory file) and aiosmtplib's ``_read_response_from_buffer``.
* ``S4-ehlo``: a 12-line EHLO reply parsed into capabilities: smtpcore's
  parser + ``Capabilities.from_ehlo``, smtplib's ``ehlo()`` (on a fake
  socket) and aiosmtplib's parser + ``parse_esmtp_extensions``.

smtpproto is left out: its encoder is ``EmailMessage.as_bytes`` followed by a
``replace`` (not the same job) and its parser cannot run outside its state
machine.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from bench.clients import Measure, Meter, Params, bench
from bench.data import EHLO_REPLY, big_body, reply_stream

#: Upper bound on repetitions of one operation, whatever the clock says.
MAX_OPS = 1_000_000


def _repeat(p: Params, op: Callable[[], object], octets: int) -> Measure:
    op()  # warm up (regex compilation, first allocations)
    n = 0
    with Meter() as m:
        deadline = time.perf_counter() + p.seconds
        while n < MAX_OPS:
            op()
            n += 1
            if time.perf_counter() >= deadline:
                break
    return m.measure(n, n * octets)


# -- encoding ------------------------------------------------------------------


def _smtpcore_encode(body: bytes) -> bytes:
    from smtpcore import BodyEncoder, EncodeMode

    # What Session._encode does for an in-memory message to an 8BITMIME server.
    encoder = BodyEncoder(mode=EncodeMode.DATA, allow_8bit=True)
    return encoder.feed(body) + encoder.end()


def _smtpcore_encode_scanned(body: bytes) -> bytes:
    from smtpcore import EncodeMode, scan_body
    from smtpcore._message import encode_scanned

    # What the session does for an in-memory message since encode_scanned:
    # scan it (the content checks, SIZE), then encode it in one pass.
    return encode_scanned(body, scan_body(body), EncodeMode.DATA)


def _smtpcore_encode_chunks(body: bytes, chunk: int = 64 * 1024) -> bytes:
    from smtpcore import BodyEncoder, EncodeMode

    encoder = BodyEncoder(mode=EncodeMode.DATA, allow_8bit=True)
    out = [encoder.feed(body[i : i + chunk]) for i in range(0, len(body), chunk)]
    out.append(encoder.end())
    return b"".join(out)


def _smtplib_encode(text: str) -> bytes:
    import smtplib

    # smtplib.SMTP.data() for a str message (private helpers, untyped).
    fix_eols: Callable[[str], str] = getattr(smtplib, "_fix_eols")  # noqa: B009
    quote_periods: Callable[[bytes], bytes] = getattr(smtplib, "_quote_periods")  # noqa: B009
    q = quote_periods(fix_eols(text).encode("ascii"))
    if q[-2:] != b"\r\n":
        q = q + b"\r\n"
    return q + b".\r\n"


def _aiosmtplib_encode(body: bytes) -> bytes:
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    # aiosmtplib's SMTPProtocol.execute_data_command.
    message = normalize_message_line_endings(body)
    message = PERIOD_REGEX.sub(b"..", message)
    return message + b".\r\n"


def _checked_body(p: Params) -> bytes:
    body = big_body(p.octets)
    expected = _aiosmtplib_encode(body)
    if not (
        _smtpcore_encode(body)
        == _smtpcore_encode_chunks(body)
        == _smtpcore_encode_scanned(body)
        == _smtplib_encode(body.decode("ascii"))
        == expected
    ):
        raise RuntimeError("the encoders disagree: the comparison would be meaningless")
    return body


@bench("S4-encode", "smtpcore")
def s4_encode_smtpcore(p: Params) -> Measure:
    body = _checked_body(p)
    return _repeat(p, lambda: _smtpcore_encode(body), len(body))


@bench("S4-encode", "smtpcore-scanned")
def s4_encode_smtpcore_scanned(p: Params) -> Measure:
    body = _checked_body(p)
    return _repeat(p, lambda: _smtpcore_encode_scanned(body), len(body))


@bench("S4-encode", "smtpcore-64k")
def s4_encode_smtpcore_chunks(p: Params) -> Measure:
    body = _checked_body(p)
    return _repeat(p, lambda: _smtpcore_encode_chunks(body), len(body))


@bench("S4-encode", "smtplib")
def s4_encode_smtplib(p: Params) -> Measure:
    body = _checked_body(p)
    text = body.decode("ascii")
    return _repeat(p, lambda: _smtplib_encode(text), len(body))


@bench("S4-encode", "aiosmtplib")
def s4_encode_aiosmtplib(p: Params) -> Measure:
    body = _checked_body(p)
    return _repeat(p, lambda: _aiosmtplib_encode(body), len(body))


# -- reply stream --------------------------------------------------------------

_TRANSACTIONS = 2000
_REPLIES = _TRANSACTIONS * 6


def _stream() -> tuple[list[bytes], int]:
    chunks = reply_stream(_TRANSACTIONS)
    return chunks, sum(map(len, chunks))


@bench("S4-parse", "smtpcore")
def s4_parse_smtpcore(p: Params) -> Measure:
    from smtpcore import ReplyParser

    chunks, octets = _stream()

    def op() -> None:
        parser = ReplyParser()
        n = 0
        for chunk in chunks:
            parser.feed(chunk)
            while parser.next_reply() is not None:
                n += 1
        if n != _REPLIES:
            raise RuntimeError(f"smtpcore parsed {n} replies")

    return _repeat(p, op, octets)


@bench("S4-parse", "smtplib")
def s4_parse_smtplib(p: Params) -> Measure:
    import smtplib

    chunks, octets = _stream()
    data = b"".join(chunks)
    client = smtplib.SMTP()

    def op() -> None:
        client.file = io.BufferedReader(io.BytesIO(data))
        for _ in range(_REPLIES):
            code, _text = client.getreply()
            if code < 200:
                raise RuntimeError("smtplib parse failed")

    return _repeat(p, op, octets)


def _aiosmtplib_parser() -> object:
    from aiosmtplib.protocol import SMTPProtocol

    # Only the buffer and the parsing method: no event loop, no transport.
    proto = SMTPProtocol.__new__(SMTPProtocol)
    proto._buffer = bytearray()
    return proto


@bench("S4-parse", "aiosmtplib")
def s4_parse_aiosmtplib(p: Params) -> Measure:
    from aiosmtplib.protocol import SMTPProtocol

    chunks, octets = _stream()
    proto = _aiosmtplib_parser()
    assert isinstance(proto, SMTPProtocol)

    def op() -> None:
        n = 0
        for chunk in chunks:
            proto._buffer.extend(chunk)
            while proto._read_response_from_buffer() is not None:
                n += 1
        if n != _REPLIES:
            raise RuntimeError(f"aiosmtplib parsed {n} replies")

    return _repeat(p, op, octets)


# -- EHLO ----------------------------------------------------------------------

_EHLO_OPS = 100  # replies per timed operation, so the clock is read rarely


@bench("S4-ehlo", "smtpcore")
def s4_ehlo_smtpcore(p: Params) -> Measure:
    from smtpcore import Capabilities, ReplyParser

    parser = ReplyParser()

    def op() -> None:
        for _ in range(_EHLO_OPS):
            parser.feed(EHLO_REPLY)
            reply = parser.next_reply()
            assert reply is not None
            caps = Capabilities.from_ehlo(reply)
            if not caps.chunking:
                raise RuntimeError("smtpcore missed CHUNKING")

    return _repeat(p, op, len(EHLO_REPLY) * _EHLO_OPS)


class _NullSocket:
    def sendall(self, data: bytes) -> None:
        pass


@bench("S4-ehlo", "smtplib")
def s4_ehlo_smtplib(p: Params) -> Measure:
    import smtplib

    client = smtplib.SMTP()
    client.sock = _NullSocket()  # type: ignore[assignment]

    def op() -> None:
        for _ in range(_EHLO_OPS):
            client.file = io.BufferedReader(io.BytesIO(EHLO_REPLY))
            code, _ = client.ehlo("localhost")
            if code != 250 or not client.has_extn("chunking"):
                raise RuntimeError("smtplib missed CHUNKING")

    return _repeat(p, op, len(EHLO_REPLY) * _EHLO_OPS)


@bench("S4-ehlo", "aiosmtplib")
def s4_ehlo_aiosmtplib(p: Params) -> Measure:
    from aiosmtplib.esmtp import parse_esmtp_extensions
    from aiosmtplib.protocol import SMTPProtocol

    proto = _aiosmtplib_parser()
    assert isinstance(proto, SMTPProtocol)

    def op() -> None:
        for _ in range(_EHLO_OPS):
            proto._buffer.extend(EHLO_REPLY)
            reply = proto._read_response_from_buffer()
            assert reply is not None
            extensions, _auth = parse_esmtp_extensions(reply.message)
            if "chunking" not in extensions:
                raise RuntimeError("aiosmtplib missed CHUNKING")

    return _repeat(p, op, len(EHLO_REPLY) * _EHLO_OPS)
