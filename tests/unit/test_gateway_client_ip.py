"""Client address: the TCP peer, X-Forwarded-For only through trusted proxies."""

import ipaddress

import pytest

from gateway.client_ip import client_address, parse_ip, parse_trusted_proxies, rate_limit_key

TRUSTED = parse_trusted_proxies(["10.0.0.1", "10.1.0.0/16", "fd00::/8"])


def test_untrusted_peer_is_the_client_whatever_xff_says():
    assert client_address("203.0.113.9", ["1.1.1.1"], TRUSTED) == "203.0.113.9"


def test_no_trusted_proxies_means_xff_is_never_read():
    assert client_address("10.0.0.1", ["1.1.1.1"], ()) == "10.0.0.1"


def test_trusted_peer_yields_the_rightmost_untrusted_address():
    xff = ["6.6.6.6, 198.51.100.7, 10.1.2.3"]  # 6.6.6.6 may be forged by the client
    assert client_address("10.0.0.1", xff, TRUSTED) == "198.51.100.7"


def test_several_xff_headers_are_one_chain_in_order():
    xff = ["6.6.6.6", "198.51.100.7, 10.1.0.5"]
    assert client_address("10.0.0.1", xff, TRUSTED) == "198.51.100.7"


def test_invalid_entries_are_skipped():
    xff = ["198.51.100.7, unknown, not-an-ip, , 300.1.1.1"]
    assert client_address("10.0.0.1", xff, TRUSTED) == "198.51.100.7"


def test_trusted_peer_without_xff_is_itself_the_client():
    assert client_address("10.0.0.1", [], TRUSTED) == "10.0.0.1"
    assert client_address("10.0.0.1", ["garbage"], TRUSTED) == "10.0.0.1"


def test_all_hops_trusted_gives_the_leftmost_hop():
    assert client_address("10.0.0.1", ["10.1.0.9, 10.1.0.8"], TRUSTED) == "10.1.0.9"


def test_ipv4_mapped_peer_matches_an_ipv4_trusted_entry():
    assert client_address("::ffff:10.0.0.1", ["198.51.100.7"], TRUSTED) == "198.51.100.7"
    assert client_address("::ffff:203.0.113.9", [], TRUSTED) == "203.0.113.9"


def test_ipv6_proxies_and_clients():
    assert client_address("fd00::1", ["2001:db8::5"], TRUSTED) == "2001:db8::5"
    assert client_address("2001:db8::9", ["1.1.1.1"], TRUSTED) == "2001:db8::9"


def test_unparseable_peer_is_returned_as_is_and_xff_ignored():
    assert client_address(None, ["1.1.1.1"], TRUSTED) == "unknown"
    assert client_address("/run/gw.sock", ["1.1.1.1"], TRUSTED) == "/run/gw.sock"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        (" 198.51.100.7 ", "198.51.100.7"),
        ("198.51.100.7:4711", "198.51.100.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("unknown", None),
        ("", None),
        ("[2001:db8::1", None),
        ("1.2.3", None),
    ],
)
def test_parse_ip(text, expected):
    result = parse_ip(text)
    assert (str(result) if result is not None else None) == expected


def test_a_bad_trusted_proxy_entry_fails_loudly():
    with pytest.raises(ValueError, match="GATEWAY_TRUSTED_PROXIES"):
        parse_trusted_proxies(["10.0.0.1", "10.0.0.300"])


def test_trusted_entries_accept_cidr_ranges():
    (net,) = parse_trusted_proxies(["192.168.1.7/24"])
    assert net == ipaddress.ip_network("192.168.1.0/24")


def test_an_ipv6_client_is_limited_by_its_whole_64():
    one = rate_limit_key("2001:db8:1:2:aaaa::1")
    assert one == "2001:db8:1:2::/64"
    assert rate_limit_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == one  # same subscriber
    assert rate_limit_key("2001:db8:1:3::1") != one  # the next /64 is someone else
    assert rate_limit_key("198.51.100.7") == "198.51.100.7"
    assert rate_limit_key("unknown") == "unknown"


def test_long_junk_in_the_chain_is_skipped_and_never_cached():
    from gateway.client_ip import _parse_ip

    before = _parse_ip.cache_info().currsize
    junk = ["x" * 8000 + str(i) for i in range(50)]
    trusted = parse_trusted_proxies(["10.0.0.0/8"])
    assert client_address("10.0.0.1", [", ".join([*junk, "203.0.113.9"])], trusted) \
        == "203.0.113.9"
    assert client_address("10.0.0.1", [", ".join(junk)], trusted) == "10.0.0.1"
    assert _parse_ip.cache_info().currsize <= before + 3


def test_without_x_forwarded_for_the_client_is_the_peer_however_often_asked():
    for _ in range(2):  # the second answer comes from the cache: the same
        assert client_address(None, [], TRUSTED) == "unknown"
        assert client_address("/run/gw.sock", [], TRUSTED) == "/run/gw.sock"
        assert client_address("::ffff:10.0.0.1", [], TRUSTED) == "10.0.0.1"
        assert client_address("203.0.113.9", [], ()) == "203.0.113.9"
        assert client_address("10.0.0.1", [], TRUSTED) == "10.0.0.1"
