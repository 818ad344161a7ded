"""The one guarded HTTP client that every outbound CRM call goes through.

Users type the addresses we call, so each call is checked before a byte leaves:
- https only (http only when the operator allows it), no credentials in the URL;
- the host is resolved once and every address must be public, unless the operator's allowlist
  admits it; the connection then goes to that very address (no second lookup, so DNS rebinding
  fails) while TLS still checks the certificate against the host name (SNI included);
- redirects are never followed; timeouts bound the connect and the whole call; bodies are capped;
- TLS is always verified, against the system roots plus the operator's `CRM_CA_BUNDLE`.

requests-hardened does the pinning part of this, but it checks only the first resolved address,
has no operator allowlist beyond "loopback on/off", and no total-time or size limit; the guard
below is small enough to own.
"""

from __future__ import annotations

import ipaddress
import json as jsonlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list]

# Pinned here rather than trusting `ipaddress` alone: its ranges changed between patch releases,
# and NAT64 / 6to4 addresses that embed a private IPv4 report is_global=True.
BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared CGNAT space (Alibaba Cloud's metadata lives here)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",  # IPv4-mapped (unwrapped and checked as IPv4 first)
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo included
        "2001:db8::/32",
        "2002::/16",  # 6to4
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",  # unique local (AWS IMDS over IPv6 is fd00:ec2::254)
        "fe80::/10",  # link-local
        "fec0::/10",
        "ff00::/8",  # multicast
    )
)


class OutboundError(Exception):
    """An outbound call that did not produce a usable answer. `outcome` is the test's code."""

    outcome = "unreachable"

    def __init__(self, detail: str = ""):
        super().__init__(detail or self.outcome)
        self.detail = detail


class InvalidURL(OutboundError):
    outcome = "invalid_url"


class BlockedDestination(OutboundError):
    outcome = "blocked_destination"


class DNSFailure(OutboundError):
    outcome = "dns_error"


class Unreachable(OutboundError):
    outcome = "unreachable"


class TimedOut(OutboundError):
    outcome = "timeout"


class TLSFailure(OutboundError):
    outcome = "tls_error"


class Redirected(OutboundError):
    outcome = "redirected"

    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


@dataclass(frozen=True)
class Policy:
    allow_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    ca_bundle: str = ""
    connect_timeout: float = 3.0
    total_timeout: float = 10.0
    max_response_bytes: int = 1024 * 1024
    max_inflight_per_host: int = 8

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Policy:
        hosts, networks = parse_allowlist(config.get("CRM_ALLOW_PRIVATE_HOSTS", ""))
        return cls(
            allow_http=bool(config.get("CRM_ALLOW_INSECURE_HTTP")),
            allowed_hosts=hosts,
            allowed_networks=networks,
            ca_bundle=config.get("CRM_CA_BUNDLE") or "",
            connect_timeout=min(float(config.get("CRM_CONNECT_TIMEOUT", 3)), 3.0),
            total_timeout=min(float(config.get("CRM_TOTAL_TIMEOUT", 10)), 10.0),
            max_response_bytes=int(config.get("CRM_MAX_RESPONSE_BYTES", 1024 * 1024)),
            max_inflight_per_host=max(1, int(config.get("CRM_MAX_INFLIGHT_PER_HOST", 8))),
        )

    def admits(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.allowed_hosts:
            return True
        return is_public(address) or any(address in net for net in self.allowed_networks)


def parse_allowlist(value: str) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in (part.strip() for part in (value or "").split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return frozenset(hosts), tuple(networks)


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in BLOCKED_NETWORKS):
        return False
    return address.is_global and not address.is_multicast


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    truncated: bool = False
    elapsed: float = 0.0

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The parsed JSON body, or None when the answer is not JSON (HTML, truncated, garbage)."""
        if self.truncated or "json" not in self.content_type:
            return None
        try:
            return jsonlib.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    host_header: str


def parse_target(url: str, policy: Policy) -> Target:
    if not isinstance(url, str) or len(url) > 4096 or any(ch.isspace() or ch == "\\" for ch in url):
        raise InvalidURL("malformed URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise InvalidURL("scheme")
    if scheme == "http" and not policy.allow_http:
        raise InvalidURL("http")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidURL("userinfo")
    host = parts.hostname
    if not host:
        raise InvalidURL("host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise InvalidURL("port") from None
    default_port = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    return Target(scheme, host, port, shown if port == default_port else f"{shown}:{port}")


class _PinnedAdapter(HTTPAdapter):
    """Connects to the address the client checked, never to a fresh lookup of the host name."""

    def __init__(self, ssl_context: ssl.SSLContext, pool_size: int):
        super().__init__(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0, pool_block=False)
        self._ssl_context = ssl_context

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pinned = getattr(request, "pinned_address", None)
        if pinned is None:
            raise BlockedDestination("unchecked destination")
        hostname = host_params["host"]
        host_params["host"] = pinned
        if host_params["scheme"] == "https":
            pool_kwargs["ssl_context"] = self._ssl_context
            pool_kwargs["server_hostname"] = hostname
            pool_kwargs["assert_hostname"] = hostname
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs


@dataclass
class GuardedClient:
    """The outbound client. One per policy; thread-safe for concurrent calls (urllib3 pools)."""

    policy: Policy = field(default_factory=Policy)
    resolver: Resolver = socket.getaddrinfo

    _slots: dict[str, threading.BoundedSemaphore] = field(default_factory=dict, init=False, repr=False)
    _slots_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def slot(self, host: str) -> threading.BoundedSemaphore:
        """Bounds the requests in flight to one CRM host, whatever number of jobs call it."""
        with self._slots_lock:
            if host not in self._slots:
                self._slots[host] = threading.BoundedSemaphore(self.policy.max_inflight_per_host)
            return self._slots[host]

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=certifi.where())
        if self.policy.ca_bundle:
            context.load_verify_locations(cafile=self.policy.ca_bundle)
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    @cached_property
    def adapter(self) -> _PinnedAdapter:
        """Requests are sent through the adapter itself, not a Session: no cookie jar, no redirect
        machinery, and no proxies from the environment (an HTTPS_PROXY would bypass the pinning)."""
        return _PinnedAdapter(self.ssl_context, self.policy.max_inflight_per_host)

    def resolve(self, target: Target) -> list[IPAddress]:
        """Every address of the host, each checked; any refused address refuses the host."""
        try:
            infos = self.resolver(target.host, target.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError) as exc:
            raise DNSFailure(type(exc).__name__) from None
        addresses: list[IPAddress] = []
        for family, _type, _proto, _name, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(sockaddr[0].split("%")[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise DNSFailure("no address")
        refused = [a for a in addresses if not self.policy.admits(target.host, a)]
        if refused:
            raise BlockedDestination("private address")
        return addresses

    def check_destination(self, url: str) -> list[IPAddress]:
        """Validate a URL without connecting: raises InvalidURL, DNSFailure or BlockedDestination."""
        return self.resolve(parse_target(url, self.policy))

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, str] | bytes | None = None,
        auth: tuple[str, str] | tuple[bytes, bytes] | None = None,
        deadline: float | None = None,
    ) -> Response:
        """Send one request and read at most `max_response_bytes` of its answer.

        `deadline` (a time.monotonic() value) lets several calls share one budget, e.g. a
        connection test; the call never runs past it nor past `total_timeout`.
        """
        started = time.monotonic()
        deadline = min(deadline or float("inf"), started + self.policy.total_timeout)
        target = parse_target(url, self.policy)
        addresses = self.resolve(target)
        if auth is not None:  # RFC 7617: UTF-8 (requests would send str credentials as Latin-1)
            auth = tuple(part.encode() if isinstance(part, str) else part for part in auth)
        # Request.prepare(), not Session.prepare_request(): the session holds no cookies or defaults
        # to merge, and skipping that merge is a measurable share of a request's cost.
        prepared = requests.Request(method, url, headers=dict(headers or {}), json=json, data=data, auth=auth).prepare()
        prepared.headers["Host"] = target.host_header
        last_error: OutboundError = Unreachable("no address")
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimedOut("deadline")
            prepared.pinned_address = str(address)
            try:
                with self.slot(target.host):
                    response = self._send(prepared, remaining, deadline)
            except _ConnectFailed as exc:
                last_error = exc.error  # nothing was sent: the next address may answer
                continue
            response.elapsed = time.monotonic() - started
            if log.isEnabledFor(logging.DEBUG):  # never the query string: it may carry a secret
                path = urlsplit(url).path or "/"
                log.debug(
                    "%s %s://%s%s -> %s in %.0f ms",
                    method,
                    target.scheme,
                    target.host_header,
                    path,
                    response.status,
                    response.elapsed * 1000,
                )
            if 300 <= response.status < 400 and response.status != 304:
                raise Redirected(describe_location(url, response.headers.get("Location", "")))
            return response
        raise last_error

    def _send(self, prepared: requests.PreparedRequest, remaining: float, deadline: float) -> Response:
        timeout = (min(self.policy.connect_timeout, remaining), remaining)
        try:
            raw = self.adapter.send(prepared, stream=True, timeout=timeout, verify=True, proxies={})
        except requests.exceptions.SSLError:
            raise TLSFailure("certificate") from None
        except requests.exceptions.ConnectTimeout:
            raise _ConnectFailed(TimedOut("connect")) from None
        except requests.exceptions.ReadTimeout:
            raise TimedOut("read") from None
        except requests.exceptions.ConnectionError as exc:
            if _is_connect_error(exc):
                raise _ConnectFailed(Unreachable("connect")) from None
            raise Unreachable("connection") from None
        except requests.exceptions.RequestException:
            raise Unreachable("request") from None
        try:
            body, truncated = self._read_capped(raw, deadline)
        finally:
            raw.close()
        return Response(raw.status_code, raw.headers, body, prepared.url or "", truncated)

    def _read_capped(self, raw: requests.Response, deadline: float) -> tuple[bytes, bool]:
        cap = self.policy.max_response_bytes
        body = bytearray()
        try:
            for chunk in raw.iter_content(chunk_size=64 * 1024):
                body += chunk
                if len(body) > cap:
                    return bytes(body[:cap]), True
                if time.monotonic() > deadline:
                    raise TimedOut("body")
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            if "timed out" in str(exc).lower():
                raise TimedOut("read") from None
            raise Unreachable("body") from None
        except requests.exceptions.RequestException:
            raise Unreachable("body") from None
        return bytes(body), False


class _ConnectFailed(Exception):
    def __init__(self, error: OutboundError):
        super().__init__(error.outcome)
        self.error = error


def _is_connect_error(exc: Exception) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError):
            return True
        reason = getattr(current, "reason", None)
        nested = reason if isinstance(reason, BaseException) else None
        args = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        current = nested or (args[0] if args else None) or current.__cause__ or current.__context__
    return False


def describe_location(base: str, location: str) -> str:
    """Where a redirect pointed, as scheme://host/path only: never a query string."""
    if not location:
        return "another address"
    parts = urlsplit(urljoin(base, location[:2048]))
    shown = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
    return shown[:200]


def client_from_config(config: Mapping[str, Any], resolver: Resolver | None = None) -> GuardedClient:
    policy = Policy.from_config(config)
    return GuardedClient(policy, resolver or socket.getaddrinfo)


def join_url(base: str, *parts: str | int) -> str:
    path = "/".join(str(p).strip("/") for p in parts if str(p).strip("/"))
    return base.rstrip("/") + ("/" + path if path else "")
