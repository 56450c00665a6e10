"""Fuzzing our own SIP parsers: RFC 4475 torture cases and hypothesis-generated garbage.

Everything the probe parses from the network — responses (UDP datagrams and
TCP/TLS streams), URIs in Contact and Record-Route, digest challenges — must
either parse or raise its own error (``SipParseError``, ``ValueError``,
``DigestError``): never another exception, never a hang. "No hang" is checked
as a bound on CPU time per message that is orders of magnitude above the
normal cost (a hang detector, not a speed test; speed is in bench/).

The torture messages below are written for this test from the descriptions
in RFC 4475 ("SIP Torture Test Messages"), §3.1.1 (valid but tortuous) and
§3.1.2 (invalid), re-shaped as *responses* where the RFC's case is a request,
because responses are what a client parses. Each names its RFC case.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.sip.digest import DigestError, choose_challenge, parse_challenge
from probes.sip.message import (
    MAX_MESSAGE,
    SipParseError,
    SipResponse,
    frame_stream,
    header_params,
    name_addr_uri,
    parse_response,
    parse_uri,
)
from probes.sip.register import binding_expiries

CPU_BOUND = 0.5
"""Seconds of CPU one message may take; normal parsing takes tens of microseconds."""


def crlf(text: str) -> bytes:
    """Test data is written with \\n line ends; the wire uses CRLF."""
    return text.replace("\n", "\r\n").encode("utf-8")


def bounded(fn: Callable[[], object]) -> object:
    started = time.process_time()
    try:
        return fn()
    finally:
        assert time.process_time() - started < CPU_BOUND


def exercise(response: SipResponse) -> None:
    """Call every accessor the probe uses on a parsed response; none may raise."""
    response.header("via")
    response.header_values("contact")
    response.header_values("record-route")
    _ = (response.top_via_branch, response.cseq, response.to_tag)
    response.matches("z9hG4bKtorture", "INVITE")
    binding_expiries(response)
    for value in response.headers.get("www-authenticate", ()):
        with contextlib.suppress(DigestError):
            parse_challenge(value)
    for value in response.header_values("contact") + response.header_values("record-route"):
        header_params(value)
        with contextlib.suppress(ValueError):
            parse_uri(name_addr_uri(value))


# -- RFC 4475 §3.1.1: valid, tortuous — must parse, with the right meaning ------

WSINV = crlf(
    """SIP/2.0   200    OK
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 0
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Contact: "Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

"""
)
"""§3.1.1.1 "wsinv": whitespace everywhere, folding, mixed case, empty compact Subject."""

ESCAPED_CONTACTS = crlf(
    """SIP/2.0 200 OK
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKtorture
To: sip:%6Aennifer@%65xample.com;tag=x
From: <sip:I%20have%20spaces@example.net>;tag=938
Call-ID: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Contact: <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Contact: "null-%00-null" <sip:null-%00-null@host.example.com>
Content-Length: 0

"""
)
"""§3.1.1.3 "esc01" and §3.1.1.5 "escnull": escaped characters (and %00) in URIs."""

LWS_DISPLAY = crlf(
    """SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKtorture
To: sip:user@example.com;tag=1
From: caller<sip:caller@example.com>;tag=323
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 INVITE
Contact: "with, comma; semicolon" <sip:a@192.0.2.9:5070;lr>, <sip:b@192.0.2.10>;expires=30
Record-Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>
Content-Length: 0

"""
)
"""§3.1.1.7 "lwsdisp" and §3.1.1.10 "semiuri": display names, commas and semicolons."""

UNREASON = crlf(
    """SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bKtorture
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 154
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.198
s=-
c=IN IP4 192.0.2.198
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"""
)
"""§3.1.1.13 "unreason": a reason phrase in UTF-8 with unusual characters, and a body."""

NOREASON = crlf(
    """SIP/2.0 100
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bKtorture
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

"""
)
"""§3.1.1.14 "noreason": an empty reason phrase."""

TRANSPORTS = crlf(
    """SIP/2.0 200 OK
v: SIP/2.0/UDP t1.example.com;branch=z9hG4bKtorture
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKkdjuw2395
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK1saber23
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKkdjuw2349i
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK1324923
Call-ID: transports.kijh4akdnaqjkwendsasfdj
CSeq: 1 INVITE
f: <sip:caller@example.com>;tag=3
t: <sip:callee@example.com>;tag=4
l: 0

"""
)
"""§3.1.1.11 "transports": unusual and unknown transports in Via, all compact forms."""


@pytest.mark.parametrize(
    ("data", "status", "reason", "check"),
    [
        pytest.param(
            WSINV,
            200,
            "OK",
            lambda r: r.cseq == (9, "INVITE") and r.to_tag == "1918181833n",
            id="3.1.1.1-wsinv",
        ),
        pytest.param(
            ESCAPED_CONTACTS,
            200,
            "OK",
            lambda r: len(r.header_values("contact")) == 2 and r.top_via_branch == "z9hG4bKtorture",
            id="3.1.1.3-esc01-and-escnull",
        ),
        pytest.param(
            LWS_DISPLAY,
            200,
            "OK",
            lambda r: (
                [name_addr_uri(c) for c in r.header_values("contact")]
                == ["sip:a@192.0.2.9:5070;lr", "sip:b@192.0.2.10"]
                and binding_expiries(r)[1] == ("sip:b@192.0.2.10", 30)
                and len(r.header_values("record-route")) == 2
            ),
            id="3.1.1.7-lwsdisp-commas-in-quotes",
        ),
        pytest.param(
            UNREASON,
            200,
            "= 2**3 * 5**2 но сто девяносто девять - простое",
            lambda r: r.body.startswith(b"v=0"),
            id="3.1.1.13-unreason",
        ),
        pytest.param(NOREASON, 100, "", lambda r: r.cseq == (35, "INVITE"), id="3.1.1.14-noreason"),
        pytest.param(
            TRANSPORTS,
            200,
            "OK",
            lambda r: (
                r.top_via_branch == "z9hG4bKtorture" and r.matches("z9hG4bKtorture", "INVITE")
            ),
            id="3.1.1.11-transports",
        ),
    ],
)
def test_valid_torture_responses_parse_with_their_meaning(
    data: bytes, status: int, reason: str, check: Callable[[SipResponse], bool]
) -> None:
    response = bounded(lambda: parse_response(data))
    assert isinstance(response, SipResponse)
    assert (response.status, response.reason) == (status, reason)
    assert check(response)
    exercise(response)


# -- RFC 4475 §3.1.2 and friends: invalid — must be refused, never crash ------


def _response(status_line: str, *extra: str, cseq: str = "CSeq: 1 INVITE") -> bytes:
    lines = [
        status_line,
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKtorture",
        "From: <sip:a@example.com>;tag=1",
        "To: <sip:b@example.com>;tag=2",
        "Call-ID: torture@192.0.2.1",
        cseq,
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


INVALID = [
    pytest.param(
        _response("SIP/2.0 4294967301 better not break the receiver"), id="3.1.2.19-bigcode"
    ),
    pytest.param(_response("SIP/7.0 200 OK"), id="3.1.2.16-badvers"),
    pytest.param(_response("SIP/2.0 099 Too Small"), id="status-below-100"),
    pytest.param(_response("SIP/2.0 OK 200"), id="status-not-a-number"),
    pytest.param(
        _response("SIP/2.0 200 OK", "Bad Header Name: x"), id="3.1.2.4-space-in-header-name"
    ),
    pytest.param(b" \r\n folded first\r\nSIP/2.0 200 OK\r\n\r\n", id="3.1.2.9-lwsstart"),
    pytest.param(b"SIP/2.0 200 OK\r\nno empty line at all", id="truncated-head"),
    pytest.param(
        crlf(
            """INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKtorture
Max-Forwards: 68
CSeq: 9 INVITE
Content-Length: 0

"""
        ),
        id="3.1.1.1-a-request-is-not-a-response",
    ),
    pytest.param(
        crlf(
            """!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~

"""
        ),
        id="3.1.1.2-intmeth-request",
    ),
]


@pytest.mark.parametrize("data", INVALID)
def test_invalid_torture_messages_are_refused_with_a_parse_error(data: bytes) -> None:
    def parse() -> None:
        with pytest.raises(SipParseError):
            parse_response(data)

    bounded(parse)


@pytest.mark.parametrize(
    ("data", "survives"),
    [
        pytest.param(
            _response("SIP/2.0 200 OK", cseq="CSeq: 1 OPTIONS"),
            lambda r: not r.matches("z9hG4bKtorture", "INVITE"),
            id="3.1.2.17-mismatch01-cseq-method",
        ),
        pytest.param(
            _response("SIP/2.0 200 OK", cseq="CSeq: 36893488147419103232 INVITE"),
            lambda r: r.cseq is not None,
            id="3.1.2.3-scalar02-huge-cseq",
        ),
        pytest.param(
            _response("SIP/2.0 200 OK", cseq="CSeq: -1 INVITE"),
            lambda r: r.cseq is None,
            id="negative-cseq-is-no-cseq",
        ),
        pytest.param(
            _response("SIP/2.0 200 OK", 'Contact: "unbalanced <sip:a@b>;expires=9'),
            lambda r: isinstance(binding_expiries(r), list),
            id="3.1.2.15-quotbal-unbalanced-quote",
        ),
        pytest.param(
            _response("SIP/2.0 200 OK", "Contact: <sip:a@b>;expires=99999999999999999999999"),
            lambda r: binding_expiries(r)[0][1] == 99999999999999999999999,
            id="3.1.2.3-scalarlg-expires",
        ),
        pytest.param(
            _response("SIP/2.0 401 Unauthorized", 'WWW-Authenticate: Digest realm="r, nonce="'),
            lambda r: True,
            id="unterminated-quote-in-challenge",
        ),
        pytest.param(
            _response("SIP/2.0 200 OK", "Via: SIP/2.0/UDP x;branch"),
            lambda r: r.top_via_branch == "z9hG4bKtorture",
            id="second-via-without-branch-value",
        ),
    ],
)
def test_odd_values_in_a_parseable_response_never_crash_the_accessors(
    data: bytes, survives: Callable[[SipResponse], bool]
) -> None:
    response = bounded(lambda: parse_response(data))
    assert isinstance(response, SipResponse)
    exercise(response)
    assert survives(response)


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        pytest.param(
            b"SIP/2.0 200 OK\r\nContent-Length: -5\r\n\r\n", "not a number", id="3.1.2.6-ncl"
        ),
        pytest.param(
            b"SIP/2.0 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            "larger than",
            id="content-length-beyond-any-message",
        ),
        pytest.param(
            b"SIP/2.0 200 OK\r\nX: " + b"y" * (MAX_MESSAGE + 10),
            "no end of headers",
            id="endless-header",
        ),
    ],
)
def test_stream_framing_refuses_what_would_make_it_wait_or_grow_forever(
    stream: bytes, error: str
) -> None:
    with pytest.raises(SipParseError, match=error):
        frame_stream(bytearray(stream))


def test_a_content_length_longer_than_the_stream_waits_for_more_bytes() -> None:
    # §3.1.2.5 "clerr": over a stream, Content-Length beyond what arrived means "not yet".
    buffer = bytearray(b"SIP/2.0 200 OK\r\nContent-Length: 9999\r\n\r\nshort")
    assert frame_stream(buffer) is None
    assert len(buffer) == 5 + len(b"SIP/2.0 200 OK\r\nContent-Length: 9999\r\n\r\n")


def test_two_responses_in_one_datagram_parse_as_the_first_with_the_rest_as_body() -> None:
    # §3.1.1.9 "dblreq": UDP carries one message; trailing bytes are not a second one.
    first = _response("SIP/2.0 200 OK", "Content-Length: 0")
    response = parse_response(first + _response("SIP/2.0 486 Busy Here"))
    assert response.status == 200


def test_a_datagram_of_sixty_thousand_folded_lines_is_parsed_within_the_bound() -> None:
    data = b"SIP/2.0 200 OK\r\nVia: a\r\n" + b" x\r\n" * 16000 + b"\r\n"
    response = bounded(lambda: parse_response(data))
    assert isinstance(response, SipResponse)


# -- hypothesis: structured mutations of a valid response ----------------------

_HEADER_NAMES = st.sampled_from(
    ["Via", "v", "To", "t", "From", "f", "CSeq", "Call-ID", "i", "Contact", "m", "l",
     "Content-Length", "Record-Route", "WWW-Authenticate", "Expires", "X-Odd"]
)  # fmt: skip
_VALUE_PARTS = st.sampled_from(
    ['"', "<", ">", ",", ";", "=", " ", "\t", "sip:", "sips:", "@", ":", "[", "]",
     "branch=z9hG4bKtorture", "tag=", "expires=", "lr", "Digest ", 'realm="r"', "nonce=",
     "qop=auth", "algorithm=SHA-256", "%00", "\\", "9" * 30, "INVITE", "é", "\x00"]
)  # fmt: skip
_VALUES = st.lists(_VALUE_PARTS, max_size=12).map("".join)
_LINE_ENDS = st.sampled_from(["\r\n", "\n", "\r\n "])


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    code = draw(st.sampled_from(["200", "100", "401", "487", "4294967301", "20", "abc", "699"]))
    end = draw(_LINE_ENDS)
    lines = [f"SIP/2.0 {code} {draw(_VALUES)}"]
    for _ in range(draw(st.integers(0, 14))):
        lines.append(
            f"{draw(_HEADER_NAMES)}{draw(st.sampled_from([':', ' :', '', ':  ']))}{draw(_VALUES)}"
        )
    body = draw(st.binary(max_size=40))
    return (end.join(lines) + end + end).encode("utf-8", "surrogatepass") + body


@settings(max_examples=150, deadline=500, suppress_health_check=[HealthCheck.too_slow])
@given(responses())
def test_generated_responses_parse_or_raise_a_parse_error_and_their_accessors_never_crash(
    data: bytes,
) -> None:
    try:
        response = parse_response(data)
    except SipParseError:
        return
    exercise(response)


@settings(max_examples=120, deadline=500)
@given(responses(), st.lists(st.tuples(st.integers(0, 400), st.binary(max_size=3)), max_size=6))
def test_byte_level_mutations_of_responses_never_crash_the_parser(
    data: bytes, edits: list[tuple[int, bytes]]
) -> None:
    mutated = bytearray(data)
    for position, insert in edits:
        position %= len(mutated) + 1
        mutated[position : position + len(insert)] = insert
    with contextlib.suppress(SipParseError):
        exercise(parse_response(bytes(mutated)))


@settings(max_examples=80, deadline=500)
@given(st.lists(responses(), max_size=4), st.integers(1, 50))
def test_a_stream_of_generated_responses_cut_into_chunks_frames_without_crashing(
    messages: list[bytes], chunk: int
) -> None:
    stream = b"".join(messages)
    buffer = bytearray()
    for start in range(0, len(stream), chunk):
        buffer += stream[start : start + chunk]
        while True:
            try:
                message = frame_stream(buffer)
            except SipParseError:
                buffer.clear()  # what the TCP transaction does: drop what cannot be framed
                break
            if message is None:
                break
            with contextlib.suppress(SipParseError):
                exercise(parse_response(message))


@settings(max_examples=120, deadline=500)
@given(st.lists(_VALUE_PARTS | st.text(max_size=5), max_size=15).map("".join))
def test_any_text_as_a_uri_parses_or_raises_value_error(text: str) -> None:
    try:
        uri = parse_uri(text)
    except ValueError:
        return
    assert 0 < uri.effective_port < 65536


@settings(max_examples=120, deadline=500)
@given(st.lists(st.lists(_VALUE_PARTS, max_size=10).map("".join), max_size=3))
def test_any_challenge_is_answered_or_refused_with_a_digest_error(values: list[str]) -> None:
    try:
        challenge = choose_challenge(["Digest " + v for v in values])
    except DigestError:
        return
    assert challenge.supported
