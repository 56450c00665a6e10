"""Building OPTIONS requests and parsing responses: compact forms, folding, case, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.sip.message import (
    SipParseError,
    build_options,
    frame_stream,
    parse_response,
    parse_uri,
)


def request_lines(**overrides: object) -> list[str]:
    fields: dict[str, object] = {
        "request_uri": "sip:+8610123@192.0.2.10:5080;transport=udp",
        "transport": "udp",
        "local_host": "198.51.100.7",
        "local_port": 5070,
        "from_user": "dialwatch",
        "from_domain": "monitor.example.com",
        "user_agent": "Dialwatch/0.1.0",
        "cseq": 7,
        "branch": "z9hG4bKfixedbranch",
        "call_id": "abc123@198.51.100.7",
        "from_tag": "tag42",
    }
    fields.update(overrides)
    request = build_options(**fields)  # type: ignore[arg-type]
    assert request.data.endswith(b"\r\n\r\n")
    assert b"\n" not in request.data.replace(b"\r\n", b"")
    return request.data.decode().split("\r\n")[:-2]


def test_options_request_has_every_header_rfc_3261_asks_for() -> None:
    assert request_lines() == [
        "OPTIONS sip:+8610123@192.0.2.10:5080;transport=udp SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bKfixedbranch;rport",
        "Max-Forwards: 70",
        "From: <sip:dialwatch@monitor.example.com>;tag=tag42",
        "To: <sip:+8610123@192.0.2.10:5080;transport=udp>",
        "Call-ID: abc123@198.51.100.7",
        "CSeq: 7 OPTIONS",
        "Contact: <sip:dialwatch@198.51.100.7:5070;transport=udp>",
        "Accept: application/sdp",
        "User-Agent: Dialwatch/0.1.0",
        "Content-Length: 0",
    ]


def test_tcp_request_says_tcp_in_via_and_contact_and_brackets_ipv6() -> None:
    lines = request_lines(transport="tcp", local_host="2001:db8::7", from_domain="2001:db8::7")
    assert lines[1] == "Via: SIP/2.0/TCP [2001:db8::7]:5070;branch=z9hG4bKfixedbranch;rport"
    assert lines[3] == "From: <sip:dialwatch@[2001:db8::7]>;tag=tag42"
    assert lines[7] == "Contact: <sip:dialwatch@[2001:db8::7]:5070;transport=tcp>"


def test_each_request_gets_a_fresh_branch_call_id_and_tag() -> None:
    common = dict(
        request_uri="sip:192.0.2.1",
        transport="udp",
        local_host="127.0.0.1",
        local_port=5060,
        from_user="u",
        from_domain="d.example",
        user_agent="ua",
    )
    a, b = build_options(**common), build_options(**common)  # type: ignore[arg-type]
    assert a.branch != b.branch and a.call_id != b.call_id
    assert a.branch.startswith("z9hG4bK") and len(a.branch) > 7 + 16
    assert a.data.split(b"tag=")[1][:16] != b.data.split(b"tag=")[1][:16]


@pytest.mark.parametrize(
    ("text", "scheme", "user", "host", "port", "params"),
    [
        pytest.param("sip:192.0.2.1", "sip", None, "192.0.2.1", None, {}, id="bare-ipv4"),
        pytest.param(
            "sip:carrier.example.com:5080",
            "sip",
            None,
            "carrier.example.com",
            5080,
            {},
            id="host-port",
        ),
        pytest.param(
            "sip:+8610123@192.0.2.1;transport=TCP;lr",
            "sip",
            "+8610123",
            "192.0.2.1",
            None,
            {"transport": "TCP", "lr": ""},
            id="user-and-params",
        ),
        pytest.param("sip:[2001:db8::1]:5062", "sip", None, "2001:db8::1", 5062, {}, id="ipv6"),
        pytest.param("SIPS:gw.example.net", "sips", None, "gw.example.net", None, {}, id="sips"),
    ],
)
def test_sip_uris_are_parsed(
    text: str, scheme: str, user: str | None, host: str, port: int | None, params: dict[str, str]
) -> None:
    uri = parse_uri(text)
    assert (uri.scheme, uri.user, uri.host, uri.port, dict(uri.params)) == (
        scheme,
        user,
        host,
        port,
        params,
    )
    assert uri.effective_port == (port or (5061 if scheme == "sips" else 5060))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("http://192.0.2.1", id="wrong-scheme"),
        pytest.param("sip:", id="no-host"),
        pytest.param("192.0.2.1:5060", id="no-scheme"),
        pytest.param("sip:192.0.2.1:0", id="port-zero"),
        pytest.param("sip:192.0.2.1:70000", id="port-too-big"),
        pytest.param("sip:bad_host!.example", id="bad-host-name"),
        pytest.param("sip:[192.0.2.1]", id="brackets-around-ipv4"),
        pytest.param("sip:host.example;;lr", id="empty-param"),
    ],
)
def test_bad_sip_uris_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_uri(text)


RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport=5070;received=127.0.0.1\r\n"
    b"From: <sip:dialwatch@127.0.0.1>;tag=1\r\n"
    b"To: <sip:127.0.0.1>;tag=2\r\n"
    b"Call-ID: x@127.0.0.1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_a_plain_response_is_parsed() -> None:
    response = parse_response(RESPONSE)
    assert (response.status, response.reason) == (200, "OK")
    assert response.top_via_branch == "z9hG4bKabc"
    assert response.cseq == (1, "OPTIONS")
    assert response.matches("z9hG4bKabc")


def test_compact_header_names_mean_the_same_as_the_full_ones() -> None:
    response = parse_response(
        b"SIP/2.0 200 OK\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcompact\r\n"
        b"f: <sip:a@b>;tag=1\r\n"
        b"t: <sip:c@d>\r\n"
        b"i: compact-call-id\r\n"
        b"CSeq: 3 OPTIONS\r\n"
        b"l: 0\r\n\r\n"
    )
    assert response.top_via_branch == "z9hG4bKcompact"
    assert response.header("Call-ID") == response.header("i") == "compact-call-id"
    assert response.header("from") == "<sip:a@b>;tag=1"
    assert response.header("TO") == "<sip:c@d>"
    assert response.header("content-length") == "0"


def test_header_names_and_branch_parameter_are_case_insensitive() -> None:
    response = parse_response(
        b"sip/2.0 404 Not Found Here\r\n"
        b"VIA: SIP/2.0/UDP 127.0.0.1:5070;BRANCH=z9hG4bKupper\r\n"
        b"cseq: 9 options\r\n\r\n"
    )
    assert (response.status, response.reason) == (404, "Not Found Here")
    assert response.top_via_branch == "z9hG4bKupper"
    assert response.matches("z9hG4bKupper")


def test_folded_header_lines_continue_the_previous_header() -> None:
    response = parse_response(
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070\r\n"
        b"\t;branch=z9hG4bKfolded\r\n"
        b"Subject: first part\r\n"
        b"   second part\r\n"
        b"CSeq: 1 OPTIONS\r\n\r\n"
    )
    assert response.top_via_branch == "z9hG4bKfolded"
    assert response.header("subject") == "first part second part"


def test_the_top_via_is_the_first_of_several_in_one_header_or_many() -> None:
    response = parse_response(
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKtop, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKnext\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKthird\r\n"
        b"CSeq: 1 OPTIONS\r\n\r\n"
    )
    assert response.top_via_branch == "z9hG4bKtop"
    assert len(response.headers["via"]) == 2


def test_bare_lf_line_endings_and_an_empty_reason_phrase_are_accepted() -> None:
    response = parse_response(
        b"SIP/2.0 503\nVia: SIP/2.0/UDP h;branch=z9hG4bKlf\nCSeq: 1 OPTIONS\n\nbody"
    )
    assert (response.status, response.reason, response.body) == (503, "", b"body")


@pytest.mark.parametrize(
    ("response", "branch", "matches"),
    [
        pytest.param(RESPONSE, "z9hG4bKabc", True, id="same-branch-and-method"),
        pytest.param(RESPONSE, "z9hG4bKother", False, id="other-branch"),
        pytest.param(
            RESPONSE.replace(b"1 OPTIONS", b"1 INVITE"), "z9hG4bKabc", False, id="other-method"
        ),
        pytest.param(
            RESPONSE.replace(b"CSeq: 1 OPTIONS\r\n", b""), "z9hG4bKabc", False, id="no-cseq"
        ),
        pytest.param(
            RESPONSE.replace(b"1 OPTIONS", b"one OPTIONS"), "z9hG4bKabc", False, id="bad-cseq"
        ),
        pytest.param(
            RESPONSE.replace(b";branch=z9hG4bKabc", b""), "z9hG4bKabc", False, id="no-branch"
        ),
    ],
)
def test_responses_match_by_via_branch_and_cseq_method(
    response: bytes, branch: str, matches: bool
) -> None:
    assert parse_response(response).matches(branch) is matches


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\xff\xfe garbage \x80\r\n\r\n", id="binary-garbage"),
        pytest.param(b"hello world", id="text-without-headers"),
        pytest.param(b"OPTIONS sip:x SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n", id="a-request"),
        pytest.param(b"SIP/2.0 999 Nope\r\n\r\n", id="status-out-of-range"),
        pytest.param(b"SIP/2.0 20 OK\r\n\r\n", id="two-digit-status"),
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\n", id="http-response"),
        pytest.param(b"SIP/2.0 200 OK\r\nVia SIP/2.0/UDP h\r\n\r\n", id="header-without-colon"),
        pytest.param(b"SIP/2.0 200 OK\r\n continuation first\r\n\r\n", id="continuation-first"),
        pytest.param(b"SIP/2.0 200 OK\r\nVia: x\r\n", id="no-empty-line"),
    ],
)
def test_malformed_datagrams_raise_sip_parse_error(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_response(data)


def test_stream_framing_drops_keepalives_and_waits_for_the_whole_body() -> None:
    message = b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nl: 5\r\n\r\nhello"
    buffer = bytearray(b"\r\n\r\n" + message[:20])
    assert frame_stream(buffer) is None
    buffer += message[20:-2]
    assert frame_stream(buffer) is None
    buffer += message[-2:] + b"SIP/2.0 100 Trying\r\n"
    assert frame_stream(buffer) == message
    assert bytes(buffer) == b"SIP/2.0 100 Trying\r\n"


def test_stream_framing_without_content_length_means_an_empty_body() -> None:
    buffer = bytearray(b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\nSIP/2.0")
    assert frame_stream(buffer) == b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n"
    assert bytes(buffer) == b"SIP/2.0"


def test_stream_framing_rejects_a_content_length_that_is_not_a_number() -> None:
    with pytest.raises(SipParseError):
        frame_stream(bytearray(b"SIP/2.0 200 OK\r\nContent-Length: lots\r\n\r\n"))


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=600),
        st.lists(
            st.sampled_from(
                [
                    b"SIP/2.0 200 OK",
                    b"Via: x;branch=z9hG4bKa",
                    b"v:",
                    b" folded",
                    b"CSeq: 1",
                    b"l: 9",
                    b"Content-Length: x",
                    b"\xff\xfe",
                    b":",
                    b"",
                    b"i: y",
                ]
            ),
            max_size=12,
        ).map(b"\r\n".join),
    )
)
def test_any_bytes_either_parse_or_raise_sip_parse_error(data: bytes) -> None:
    try:
        response = parse_response(data)
    except SipParseError:
        return
    assert 100 <= response.status <= 699
    response.matches("z9hG4bKa")  # must not raise either


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_on_a_tcp_stream_frame_or_raise_sip_parse_error(data: bytes) -> None:
    buffer = bytearray(data)
    try:
        while frame_stream(buffer) is not None:
            pass
    except SipParseError:
        pass
