"""The guarded outbound client: SSRF matrix, pinning, redirects, timeouts, size cap, TLS, logging."""

import logging
import time

import pytest

from crm.net import (
    BlockedDestination,
    DNSFailure,
    GuardedClient,
    InvalidURL,
    Policy,
    Redirected,
    TimedOut,
    TLSFailure,
    Unreachable,
    is_public,
    parse_allowlist,
    parse_ports,
)
from tests.conftest import PUBLIC_IP, FakeDNS
from tests.fakes.server import RawListener

NAMES = {
    "internal.example.test": ["10.1.2.3"],
    "mixed.example.test": [PUBLIC_IP, "127.0.0.1"],
    "metadata.google.internal": ["169.254.169.254"],
    "v6private.example.test": ["fd00::1"],
    "mapped.example.test": ["::ffff:10.0.0.1"],
    "nat64.example.test": ["64:ff9b::a9fe:a9fe"],
    "cgnat.example.test": ["100.100.100.200"],
    "foo.localhost": ["127.0.0.1"],
    "public.example.test": [PUBLIC_IP],
}

# Hosts whose resolved addresses must be refused before any connection.
BLOCKED_HOSTS = [
    "127.0.0.1",
    "127.1",
    "0177.0.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "127.000.000.001",
    "127.255.255.254",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "0.0.0.0",  # noqa: S104 - a destination to refuse, not a bind address
    "0",
    "[::]",
    "169.254.169.254",
    "[fd00:ec2::254]",
    "100.100.100.200",
    "100.64.0.1",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "192.0.0.1",
    "198.18.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "[fe80::1]",
    "[fc00::1]",
    "[64:ff9b::a9fe:a9fe]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b:1::a00:1]",
    "[2002:a9fe:a9fe::]",
    "[2002:7f00:1::]",
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
    "[ff02::1]",
    "[2001:db8::1]",
    "[::127.0.0.1]",  # IPv4-compatible
    "[::a9fe:a9fe]",
    "[::ffff:0:7f00:1]",  # SIIT
    "[::ffff:0:a9fe:a9fe]",
    "[4000::1]",  # outside 2000::/3, the only global unicast space
    "localhost",
    "LOCALHOST",
    "foo.localhost",
    "internal.example.test",
    "mixed.example.test",
    "metadata.google.internal",
    "v6private.example.test",
    "mapped.example.test",
    "nat64.example.test",
    "cgnat.example.test",
]


@pytest.fixture
def sink():
    with RawListener("silent") as listener:
        yield listener


def client(resolver=None, **policy) -> GuardedClient:
    return GuardedClient(Policy(**policy), resolver or FakeDNS(NAMES))


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
def test_private_destinations_are_refused_before_connecting(host, sink, tripwire):
    guarded = client(allowed_ports=frozenset({sink.port}))  # the address is what refuses them, not the port
    for scheme in ("https", "http"):
        with pytest.raises((BlockedDestination, InvalidURL)) as caught:
            guarded.request("GET", f"{scheme}://{host}:{sink.port}/api/v1/profile", headers={"api_access_token": "x"})
        if scheme == "https":
            assert isinstance(caught.value, BlockedDestination)
            assert caught.value.outcome == "blocked_destination"
    assert sink.connections == 0
    assert tripwire.attempts == []


def test_the_matrix_is_large_enough():
    assert len(BLOCKED_HOSTS) >= 40


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_x",
        "ftp://public.example.test/",
        "dict://public.example.test:11211/",
        "https://user:pw@public.example.test/",
        "https://user@public.example.test/",
        "https://public.example.test\\@127.0.0.1/",
        "https://public.example.test /",
        "https://public.example.test:notaport/",
        "https:///nohost",
        "//public.example.test/",
        "http://public.example.test/",  # plain http, not allowed by the operator
    ],
)
def test_unusable_urls_are_invalid(url, tripwire):
    with pytest.raises(InvalidURL) as caught:
        client().request("GET", url)
    assert caught.value.outcome == "invalid_url"
    assert tripwire.attempts == []


def test_fragment_tricks_resolve_the_real_host(sink, tripwire):
    with pytest.raises(BlockedDestination):
        client().request("GET", f"https://127.0.0.1:{sink.port}#@public.example.test/")
    assert sink.connections == 0


@pytest.mark.parametrize("host", ["a" * 300 + ".example.test", "no-such-host.example.test", "xn--zz.invalid"])
def test_names_that_do_not_resolve_are_dns_errors(host, tripwire):
    with pytest.raises(DNSFailure) as caught:
        client().request("GET", f"https://{host}/")
    assert caught.value.outcome == "dns_error"
    assert tripwire.attempts == []


def test_dns_rebinding_cannot_reach_loopback(sink, tripwire):
    """The resolver answers public first, loopback afterwards: the client asks once and connects
    only to the address it checked (the tripwire refuses that public address, so nothing leaves)."""
    answers = iter([[PUBLIC_IP], ["127.0.0.1"], ["127.0.0.1"]])
    resolver = FakeDNS({"rebind.example.test": lambda: next(answers)})
    with pytest.raises(Unreachable):
        client(resolver, allowed_ports=frozenset({sink.port})).request(
            "GET", f"https://rebind.example.test:{sink.port}/"
        )
    assert resolver.lookups == ["rebind.example.test"]
    assert tripwire.attempts == [PUBLIC_IP]
    assert sink.connections == 0


def test_a_redirect_to_loopback_is_not_followed(sink, tripwire):
    target = f"http://127.0.0.1:{sink.port}/latest/meta-data?token=abc"
    with RawListener("redirect", location=target) as redirector:
        guarded = client(
            FakeDNS({"crm.example.test": ["127.0.0.1"]}), allow_http=True, allowed_hosts=frozenset({"crm.example.test"})
        )
        with pytest.raises(Redirected) as caught:
            guarded.request("GET", f"http://crm.example.test:{redirector.port}/api", headers={"X-Api-Key": "k"})
        assert redirector.connections == 1
    assert caught.value.outcome == "redirected"
    assert caught.value.location == f"http://127.0.0.1:{sink.port}/latest/meta-data"  # no query string
    assert sink.connections == 0


def test_allowlist_admits_names_addresses_and_ranges():
    allowlist = parse_allowlist(" crm.internal , 127.0.0.1, 10.0.0.0/8, [fd00::1] ,")
    hosts, networks = allowlist.hosts, allowlist.networks
    assert hosts == frozenset({"crm.internal"})
    assert [str(n) for n in networks] == ["127.0.0.1/32", "10.0.0.0/8", "fd00::1/128"]
    policy = Policy(allowed_hosts=hosts, allowed_networks=networks)
    import ipaddress

    assert policy.admits("crm.internal", ipaddress.ip_address("192.168.1.1"))
    assert policy.admits("x.example", ipaddress.ip_address("10.9.8.7"))
    assert not policy.admits("x.example", ipaddress.ip_address("192.168.1.1"))
    assert policy.admits("x.example", ipaddress.ip_address(PUBLIC_IP))


def test_public_addresses_are_public():
    import ipaddress

    for address in (PUBLIC_IP, "8.8.8.8", "2606:4700:4700::1111", "1.1.1.1"):
        assert is_public(ipaddress.ip_address(address))


def test_a_silent_server_times_out_within_budget(tripwire):
    with RawListener("silent") as silent:
        guarded = client(allow_http=True, allowed_networks=parse_allowlist("127.0.0.1").networks)
        started = time.monotonic()
        with pytest.raises(TimedOut) as caught:
            guarded.request("GET", f"http://127.0.0.1:{silent.port}/")
        elapsed = time.monotonic() - started
    assert caught.value.outcome == "timeout"
    assert elapsed < 11  # the budget is 10 s; this is the bound, not a performance claim


def test_an_endless_body_is_cut_at_the_cap():
    with RawListener("endless") as endless:
        guarded = client(allow_http=True, allowed_networks=parse_allowlist("127.0.0.1").networks)
        response = guarded.request("GET", f"http://127.0.0.1:{endless.port}/")
    assert response.truncated
    assert len(response.body) == 1024 * 1024
    assert response.json() is None  # a cut body is never parsed as an answer


def test_connection_refused_is_unreachable():
    with RawListener("silent") as listener:
        port = listener.port
    guarded = client(allow_http=True, allowed_networks=parse_allowlist("127.0.0.1").networks)
    with pytest.raises(Unreachable):
        guarded.request("GET", f"http://127.0.0.1:{port}/")


def test_tls_is_verified_and_a_private_ca_can_be_added(tls_server_context, ca_bundle):
    from tests.fakes.custom_crm import FakeCustomCRM

    with FakeCustomCRM(tls=tls_server_context) as crm:
        url = f"https://localhost:{crm.port}/v1/me"
        untrusted = client(allowed_hosts=frozenset({"localhost"}))
        with pytest.raises(TLSFailure) as caught:
            untrusted.request("GET", url, headers={"X-API-Key": crm.api_key})
        assert caught.value.outcome == "tls_error"
        trusted = client(allowed_hosts=frozenset({"localhost"}), ca_bundle=ca_bundle)
        response = trusted.request("GET", url, headers={"X-API-Key": crm.api_key})
        assert response.status == 200
        # The certificate names localhost; the pinned address is 127.0.0.1. A name the
        # certificate does not carry fails, even though it reaches the same server.
        other_name = client(
            FakeDNS({"crm.example.test": ["127.0.0.1"]}),
            allowed_hosts=frozenset({"crm.example.test"}),
            ca_bundle=ca_bundle,
        )
        with pytest.raises(TLSFailure):
            other_name.request("GET", f"https://crm.example.test:{crm.port}/v1/me")
    assert crm.requests[-1]["headers"]["Host"] == f"localhost:{crm.port}"


def test_environment_proxies_are_ignored(monkeypatch, sink):
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{sink.port}")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{sink.port}")
    guarded = client(FakeDNS({"crm.example.test": ["127.0.0.3"]}), allowed_hosts=frozenset({"crm.example.test"}))
    with pytest.raises(Unreachable):
        guarded.request("GET", "https://crm.example.test:1/")
    assert sink.connections == 0


def test_debug_logs_carry_no_secret(caplog):
    from tests.fakes.custom_crm import FakeCustomCRM

    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "requests", "crm", "crm.net"):
        caplog.set_level(logging.DEBUG, logger=name)
    with FakeCustomCRM() as crm:
        guarded = client(allow_http=True, allowed_networks=parse_allowlist("127.0.0.1").networks)
        guarded.request("GET", crm.url() + "/v1/me", headers={"X-API-Key": crm.api_key})
        guarded.request(
            "POST",
            crm.url() + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(crm.client_id, crm.client_secret),
        )
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "/v1/me" in text  # the positive control: requests were logged
    for secret in (crm.api_key, crm.client_secret):
        assert secret not in text


@pytest.mark.parametrize(
    "address",
    [
        "::127.0.0.1",  # IPv4-compatible forms of private addresses
        "::a9fe:a9fe",
        "::10.0.0.1",
        "::8.8.8.8",  # deprecated even for a public IPv4: not a route anyone uses
        "::ffff:0:7f00:1",  # SIIT (IPv4-translated)
        "::ffff:0:a9fe:a9fe",
        "::ffff:0:10.0.0.1",
        "4000::1",  # outside 2000::/3, the only global unicast space
        "e000::1",
    ],
)
def test_ipv6_is_public_only_inside_global_unicast(address):
    import ipaddress

    assert not is_public(ipaddress.ip_address(address))


# --- ports ----------------------------------------------------------------------------------------


def test_user_urls_may_use_only_the_standard_ports(tripwire):
    resolver = FakeDNS(NAMES)
    guarded = client(resolver)
    for url in (
        "https://public.example.test:8080/",
        "https://public.example.test:22/",
        "https://public.example.test:80/",
    ):
        with pytest.raises(BlockedDestination) as caught:
            guarded.check_destination(url)
        assert caught.value.detail.startswith("port ")
    assert resolver.lookups == []  # refused before any lookup, so nothing about the port leaks
    assert guarded.check_destination("https://public.example.test/")
    assert guarded.check_destination("https://public.example.test:443/")
    with_http = client(resolver, allow_http=True)
    assert with_http.check_destination("http://public.example.test/")
    with pytest.raises(BlockedDestination):
        with_http.check_destination("http://public.example.test:8080/")
    operator_allowed = client(resolver, allowed_ports=parse_ports("8443, 9000"))
    assert operator_allowed.check_destination("https://public.example.test:8443/")
    with pytest.raises(BlockedDestination):
        operator_allowed.check_destination("https://public.example.test:8444/")
    assert tripwire.attempts == []


def test_a_refused_port_is_explained(app, alice, dns, tripwire):
    from crm.integrations import service

    result = service.test_connection(
        alice, "CHATWOOT", {"base_url": "https://chat.example.com:8080", "account_id": 1, "api_key": "t" * 24}
    )
    assert result.outcome == "blocked_destination"
    assert "Port 8080 is not allowed" in result.message and "CRM_ALLOWED_PORTS" in result.message
    assert tripwire.attempts == []


def test_the_allowlist_pins_private_hosts_to_their_ports():
    allowlist = "chat.internal:8443, 10.1.2.3:9000, [fd00::1]:8443, 10.2.0.0/16:8080, legacy.internal"
    resolver = FakeDNS({"chat.internal": ["10.9.9.9"], "legacy.internal": ["10.8.8.8"]})
    policy = Policy.from_config({"CRM_ALLOW_PRIVATE_HOSTS": allowlist})
    guarded = GuardedClient(policy, resolver)
    for url in (
        "https://chat.internal:8443/",
        "https://10.1.2.3:9000/",
        "https://[fd00::1]:8443/",
        "https://10.2.3.4:8080/",
        "https://legacy.internal:8081/",  # a bare host keeps its old meaning: every port
    ):
        assert guarded.check_destination(url), url
    for url in (
        "https://chat.internal/",
        "https://chat.internal:8444/",
        "https://10.1.2.3/",
        "https://10.1.2.3:9001/",
        "https://[fd00::1]/",
        "https://10.2.3.4/",
        "https://10.3.0.1:8080/",
    ):
        with pytest.raises(BlockedDestination):
            guarded.check_destination(url)


@pytest.mark.parametrize("entry", ["crm.internal:https", "crm.internal:0", "10.0.0.1:70000", "[fd00::1]:x"])
def test_an_unreadable_allowlist_port_stops_the_start(entry):
    with pytest.raises(ValueError, match="CRM_ALLOW_PRIVATE_HOSTS"):
        parse_allowlist(entry)
