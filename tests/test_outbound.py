"""The outbound address policy (core.net.outbound): which addresses a configured URL may reach,
and how a URL is aimed at the address that was checked."""

from __future__ import annotations

import ipaddress
import time

import pytest

from core.net.outbound import OutboundRefused, checked_address, denied_range, pinned_url


@pytest.mark.parametrize(
    ("address", "denied"),
    [
        pytest.param("10.0.0.1", ("10.0.0.0/8", "private"), id="10-8"),
        pytest.param("172.16.0.1", ("172.16.0.0/12", "private"), id="172-16-12-start"),
        pytest.param("172.31.255.254", ("172.16.0.0/12", "private"), id="172-16-12-end"),
        pytest.param("172.32.0.1", None, id="just-past-172-16-12"),
        pytest.param("192.168.1.1", ("192.168.0.0/16", "private"), id="192-168-16"),
        pytest.param("127.0.0.1", ("127.0.0.0/8", "loopback"), id="loopback"),
        pytest.param("127.8.9.10", ("127.0.0.0/8", "loopback"), id="all-of-127-8"),
        pytest.param("169.254.169.254", ("169.254.0.0/16", "link-local"), id="cloud-metadata"),
        pytest.param("0.0.0.0", ("0.0.0.0/8", "this-host"), id="unspecified-v4"),
        pytest.param("::", ("::/128", "this-host"), id="unspecified-v6"),
        pytest.param("::1", ("::1/128", "loopback"), id="loopback-v6"),
        pytest.param("fd00::5", ("fc00::/7", "private"), id="unique-local-v6"),
        pytest.param("fe80::1", ("fe80::/10", "link-local"), id="link-local-v6"),
        pytest.param("::ffff:10.0.0.1", ("10.0.0.0/8", "private"), id="v4-mapped-private"),
        pytest.param("::ffff:8.8.8.8", None, id="v4-mapped-public"),
        pytest.param("8.8.8.8", None, id="public-v4"),
        pytest.param("2400:3200::1", None, id="public-v6"),
    ],
)
def test_the_deny_list(address: str, denied: tuple[str, str] | None) -> None:
    assert denied_range(ipaddress.ip_address(address)) == denied


def test_an_ip_literal_is_checked_without_a_lookup() -> None:
    deadline = time.monotonic() + 1
    assert str(checked_address("8.8.8.8", 443, deadline=deadline)) == "8.8.8.8"
    with pytest.raises(OutboundRefused) as raised:
        checked_address("fe80::1", 443, deadline=deadline)
    assert raised.value.permanent
    assert raised.value.reason.startswith("fe80::1, a link-local address (fe80::/10): not sent")
    allowed = checked_address("127.0.0.1", 80, deadline=deadline, allow_private=True)
    assert str(allowed) == "127.0.0.1"


@pytest.mark.parametrize(
    ("url", "address", "expected", "host_header"),
    [
        pytest.param(
            "https://hooks.example.cn/a/b?x=1",
            "203.0.113.5",
            "https://203.0.113.5/a/b?x=1",
            "hooks.example.cn",
            id="default-port",
        ),
        pytest.param(
            "http://hooks.example.cn:8080/a",
            "203.0.113.5",
            "http://203.0.113.5:8080/a",
            "hooks.example.cn:8080",
            id="own-port",
        ),
        pytest.param(
            "https://hooks.example.cn/a",
            "2001:db8::5",
            "https://[2001:db8::5]/a",
            "hooks.example.cn",
            id="ipv6",
        ),
    ],
)
def test_a_url_is_aimed_at_the_checked_address_keeping_its_name(
    url: str, address: str, expected: str, host_header: str
) -> None:
    pinned = pinned_url(url, ipaddress.ip_address(address))
    assert (pinned.url, pinned.host_header, pinned.hostname) == (
        expected,
        host_header,
        "hooks.example.cn",
    )
