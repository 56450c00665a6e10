"""Digest authentication (RFC 7616 / RFC 8760): challenge parsing, choice and responses.

The expected responses are the worked examples of RFC 7616 §3.9.1 (MD5 and
SHA-256 for user "Mufasa", password "Circle of Life"), recomputed here from
the RFC's own definitions so a wrong concatenation order cannot pass.
"""

from __future__ import annotations

import hashlib

import pytest

from probes.sip.digest import (
    DigestError,
    authorization,
    choose_challenge,
    digest_response,
    parse_challenge,
)

RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        pytest.param("MD5", "8ca523f5e9506fed4657c9700eebdbec", id="md5"),
        pytest.param(
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            id="sha-256",
        ),
    ],
)
def test_the_rfc_7616_examples_give_the_rfc_responses(algorithm: str, expected: str) -> None:
    challenge = parse_challenge(RFC7616_CHALLENGE.format(alg=algorithm))
    response = digest_response(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        nc=1,
    )
    assert response == expected


def test_without_qop_the_rfc_2069_form_is_used() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n"')
    ha1 = hashlib.md5(b"u:r:p").hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:r").hexdigest()
    expected = hashlib.md5(f"{ha1}:n:{ha2}".encode()).hexdigest()
    got = digest_response(
        challenge, method="REGISTER", uri="sip:r", username="u", password="p", cnonce="c", nc=1
    )
    assert got == expected


def test_md5_sess_hashes_the_nonce_and_cnonce_into_ha1() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", algorithm=MD5-sess, qop="auth"')
    ha1 = hashlib.md5(f"{hashlib.md5(b'u:r:p').hexdigest()}:n:c".encode()).hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:r").hexdigest()
    expected = hashlib.md5(f"{ha1}:n:00000001:c:auth:{ha2}".encode()).hexdigest()
    got = digest_response(
        challenge, method="REGISTER", uri="sip:r", username="u", password="p", cnonce="c", nc=1
    )
    assert got == expected


def test_the_authorization_header_carries_every_field_and_never_the_password() -> None:
    challenge = parse_challenge(
        'Digest realm="pbx", nonce="abc", qop="auth", algorithm=SHA-256, opaque="o1"'
    )
    value = authorization(
        challenge,
        method="REGISTER",
        uri="sip:pbx",
        username="alice",
        password="s3cret!",
        cnonce="cn",
    )
    assert value.startswith("Digest ")
    for part in (
        'username="alice"',
        'realm="pbx"',
        'nonce="abc"',
        'uri="sip:pbx"',
        "qop=auth",
        "nc=00000001",
        'cnonce="cn"',
        'opaque="o1"',
        "algorithm=SHA-256",
    ):
        assert part in value
    assert "s3cret" not in value


@pytest.mark.parametrize(
    ("values", "algorithm"),
    [
        pytest.param(['Digest realm="r", nonce="1"'], "MD5", id="md5-by-default"),
        pytest.param(
            [
                'Digest realm="r", nonce="1", algorithm=MD5',
                'Digest realm="r", nonce="2", algorithm=SHA-256',
            ],
            "SHA-256",
            id="strongest-of-two",
        ),
        pytest.param(
            [
                'Digest realm="r", nonce="1", algorithm=SHA-512-256-sess, qop="auth-int"',
                'Digest realm="r", nonce="2", algorithm=MD5, qop="auth"',
            ],
            "MD5",
            id="skips-auth-int-only",
        ),
    ],
)
def test_the_strongest_supported_challenge_is_answered(values: list[str], algorithm: str) -> None:
    assert choose_challenge(values).algorithm == algorithm


@pytest.mark.parametrize(
    ("values", "realm", "message"),
    [
        pytest.param(['Basic realm="r"'], None, "asks for Basic authentication", id="basic"),
        pytest.param(['Digest realm="r"'], None, "no realm or no nonce", id="no-nonce"),
        pytest.param(
            ['Digest realm="r", nonce="n", algorithm=SHA-1'],
            None,
            "offers only digest SHA-1",
            id="sha1",
        ),
        pytest.param(
            ['Digest realm="r", nonce="n", qop="auth-int"'], None, "MD5 qop=auth-int", id="auth-int"
        ),
        pytest.param(
            ['Digest realm="other", nonce="n"'], "mine", "not the configured realm mine", id="realm"
        ),
        pytest.param([], None, "has no challenge", id="none"),
    ],
)
def test_challenges_we_cannot_answer_say_why(
    values: list[str], realm: str | None, message: str
) -> None:
    with pytest.raises(DigestError, match=message):
        choose_challenge(values, realm)


def test_quoted_commas_and_escapes_in_a_challenge_are_kept() -> None:
    challenge = parse_challenge(r'Digest realm="a, \"b\"", nonce="x,y", stale=TRUE, qop="auth"')
    assert (challenge.realm, challenge.nonce, challenge.stale) == ('a, "b"', "x,y", True)
