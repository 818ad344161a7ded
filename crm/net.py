"""The one guarded HTTP client that every outbound CRM call goes through.

Users type the addresses we call, so each call is checked before a byte leaves:
- https only (http only when the operator allows it), no credentials in the URL;
- the host is resolved once and every address must be public, unless the operator's allowlist
  admits it; the connection then goes to that very address (no second lookup, so DNS rebinding
  fails) while TLS still checks the certificate against the host name (SNI included);
- only the standard ports (443, and 80 when http is allowed) unless the operator allows more;
- redirects are never followed; bodies are capped;
- the whole call ends by its deadline, whatever the server does: the DNS lookup and the wait for a
  host slot are bounded, each read waits at most the time left, and a watchdog shuts the socket down
  when the deadline passes (a server dripping a byte at a time defeats any per-read timeout);
- TLS is always verified, against the system roots plus the operator's `CRM_CA_BUNDLE`.

requests-hardened does the pinning part of this, but it checks only the first resolved address,
has no operator allowlist beyond "loopback on/off", and no total-time or size limit; the guard
below is small enough to own.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import json as jsonlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
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
        "::/96",  # IPv4-compatible (deprecated), e.g. ::127.0.0.1
        "::ffff:0:0/96",  # IPv4-mapped (unwrapped and checked as IPv4 first)
        "::ffff:0:0:0/96",  # SIIT IPv4-translated, e.g. ::ffff:0:a9fe:a9fe
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
# The only IPv6 space allocated for global unicast; anything outside it is refused (RFC 4291).
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
# Ports a user-entered URL may use without the operator's say-so: 443, and 80 when http is allowed.
HTTPS_PORT, HTTP_PORT = 443, 80
# How long a web request's call waits for a free outbound slot before it is refused as busy: the
# wait itself holds a request thread, so it is short.
WEB_GATE_WAIT = 0.05


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


class Busy(OutboundError):
    """This process already has as many web requests waiting on CRMs as it allows."""

    outcome = "rate_limited"


class Redirected(OutboundError):
    outcome = "redirected"

    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


@dataclass(frozen=True)
class Allowlist:
    """The operator's CRM_ALLOW_PRIVATE_HOSTS. `host:port` entries admit that port only; a bare
    host, address or range admits every port (the older form, kept for existing settings)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    host_ports: frozenset[tuple[str, int]] = frozenset()
    network_ports: tuple[tuple[IPNetwork, int], ...] = ()


@dataclass(frozen=True)
class Policy:
    allow_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_host_ports: frozenset[tuple[str, int]] = frozenset()
    allowed_network_ports: tuple[tuple[IPNetwork, int], ...] = ()
    allowed_ports: frozenset[int] = frozenset()  # CRM_ALLOWED_PORTS: more ports for every host
    ca_bundle: str = ""
    connect_timeout: float = 3.0
    total_timeout: float = 10.0
    max_response_bytes: int = 1024 * 1024
    max_inflight_per_host: int = 8
    web_call_slots: int = 0  # calls made on a web request's thread at once, per process (0: no cap)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Policy:
        allowlist = parse_allowlist(config.get("CRM_ALLOW_PRIVATE_HOSTS", ""))
        return cls(
            allow_http=bool(config.get("CRM_ALLOW_INSECURE_HTTP")),
            allowed_hosts=allowlist.hosts,
            allowed_networks=allowlist.networks,
            allowed_host_ports=allowlist.host_ports,
            allowed_network_ports=allowlist.network_ports,
            allowed_ports=parse_ports(config.get("CRM_ALLOWED_PORTS", "")),
            ca_bundle=config.get("CRM_CA_BUNDLE") or "",
            connect_timeout=min(float(config.get("CRM_CONNECT_TIMEOUT", 3)), 3.0),
            total_timeout=min(float(config.get("CRM_TOTAL_TIMEOUT", 10)), 10.0),
            max_response_bytes=int(config.get("CRM_MAX_RESPONSE_BYTES", 1024 * 1024)),
            max_inflight_per_host=max(1, int(config.get("CRM_MAX_INFLIGHT_PER_HOST", 8))),
            web_call_slots=max(0, int(config.get("CRM_WEB_CALL_SLOTS", 0) or 0)),
        )

    def standard_port(self, port: int) -> bool:
        return port == HTTPS_PORT or (port == HTTP_PORT and self.allow_http) or port in self.allowed_ports

    def may_use_port(self, host: str, port: int) -> bool:
        """Whether any address of `host` could be admitted on `port`, before looking it up."""
        return (
            self.standard_port(port)
            or _name(host) in self.allowed_hosts
            or (_name(host), port) in self.allowed_host_ports
            or bool(self.allowed_networks)
            or any(allowed == port for _net, allowed in self.allowed_network_ports)
        )

    def admits(self, host: str, address: IPAddress, port: int = HTTPS_PORT) -> bool:
        name = _name(host)
        if name in self.allowed_hosts or (name, port) in self.allowed_host_ports:
            return True
        if any(address in net for net in self.allowed_networks):
            return True
        if any(address in net and port == allowed for net, allowed in self.allowed_network_ports):
            return True
        return is_public(address) and self.standard_port(port)


def _name(host: str) -> str:
    return host.lower().rstrip(".").strip("[]")


def parse_allowlist(value: str) -> Allowlist:
    """Entries: `host:port`, `address:port`, `[v6]:port`, `range:port` (recommended), or the same
    without a port (every port)."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    host_ports: set[tuple[str, int]] = set()
    network_ports: list[tuple[IPNetwork, int]] = []
    for entry in (part.strip() for part in (value or "").split(",")):
        if not entry:
            continue
        target, port = _split_port(entry)
        try:
            network = ipaddress.ip_network(target.strip("[]"), strict=False)
        except ValueError:
            network = None
        if network is not None and port is None:
            networks.append(network)
        elif network is not None:
            network_ports.append((network, port))
        elif port is None:
            hosts.add(_name(target))
        else:
            host_ports.add((_name(target), port))
    return Allowlist(frozenset(hosts), tuple(networks), frozenset(host_ports), tuple(network_ports))


def _split_port(entry: str) -> tuple[str, int | None]:
    """`[::1]:8443` and `host:8443` carry a port; a bare IPv6 address (two colons or more) does not."""
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        return address, (_port(entry, rest[1:]) if rest.startswith(":") else None)
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, _port(entry, port)
    return entry, None


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"CRM_ALLOW_PRIVATE_HOSTS: {entry!r} does not end in a port between 1 and 65535")
    return int(text)


def parse_ports(value: str) -> frozenset[int]:
    ports = set()
    for part in (p.strip() for p in str(value or "").split(",")):
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise ValueError(f"CRM_ALLOWED_PORTS: {part!r} is not a port between 1 and 65535")
        ports.add(int(part))
    return frozenset(ports)


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address not in GLOBAL_UNICAST_V6:
            return False  # IPv4-compatible, SIIT, reserved and unallocated space alike
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


# --- the deadline, enforced on the socket ------------------------------------------------------


class _Watch:
    """One call's sockets, shut down by the reaper if the call is still running at its deadline.
    A shut-down socket makes the blocked recv() (or send, or TLS handshake) return at once."""

    __slots__ = ("_done", "_lock", "_owned", "_sockets", "deadline", "fired")

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._owned: list[socket.socket] = []

    def attach(self, sock: socket.socket, owned: bool = False) -> None:
        with self._lock:
            if self._done:
                if owned:
                    sock.close()
                return
            self._sockets.append(sock)
            if owned:
                self._owned.append(sock)
            fired = self.fired
        if fired:
            _shut(sock)

    def fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._sockets.clear()
            owned, self._owned = self._owned, []
        for sock in owned:
            sock.close()


def _shut(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: the latter drops the TLS object under a
    # thread that may be reading through it. Shutting the descriptor down is what wakes that reader.
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Reaper:
    """One daemon thread for the whole process: fires each watch at its deadline (a timer thread
    per call would cost a thread start on every request)."""

    def __init__(self):
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float) -> _Watch:
        watch = _Watch(deadline)
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="crm-net-reaper", daemon=True)
                self._thread.start()
            if self._heap[0][2] is watch:
                self._cond.notify()
        return watch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                _deadline, _order, watch = heapq.heappop(self._heap)
            watch.fire()


_reaper = _Reaper()
_current = threading.local()  # the watch of the call running on this thread


def _watch_current(sock: socket.socket | None, duplicate: bool = False) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None and sock is not None:
        watch.attach(sock.dup() if duplicate else sock, owned=duplicate)


class _Watched:
    """Hands each socket a call uses to that call's watch."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        # Before the TLS handshake, which a slow server can drag out too. A duplicate: wrapping the
        # socket in TLS detaches this object from the connection; a duplicate still shuts it down.
        _watch_current(sock, duplicate=True)
        return sock

    def request(self, *args, **kwargs):
        _watch_current(self.sock)  # a kept-alive connection, reused by this call
        return super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _Lookups:
    """Name lookups run on these threads so that a caller can stop waiting for one; the system
    resolver cannot be interrupted, so a stuck lookup keeps its thread until the resolver's own
    timeout."""

    def __init__(self):
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, *args, **kwargs):
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="crm-dns")
            pool = self._pool
        return pool.submit(*args, **kwargs)


_lookups = _Lookups()


def _after_fork() -> None:
    """A forked process (a gunicorn or RQ worker) has none of its parent's threads: start afresh."""
    _reaper._reset()
    _lookups._reset()


os.register_at_fork(after_in_child=_after_fork)


class _PinnedAdapter(HTTPAdapter):
    """Connects to the address the client checked, never to a fresh lookup of the host name."""

    def __init__(self, ssl_context: ssl.SSLContext, pool_size: int):
        super().__init__(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0, pool_block=False)
        self._ssl_context = ssl_context

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

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
    # Whether the calling thread serves a web request (Flask's has_request_context in the app):
    # such calls share `policy.web_call_slots`, so that slow CRMs cannot take every request thread.
    on_web_thread: Callable[[], bool] = lambda: False

    _slots: dict[str, threading.BoundedSemaphore] = field(default_factory=dict, init=False, repr=False)
    _slots_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @cached_property
    def web_gate(self) -> threading.BoundedSemaphore | None:
        slots = self.policy.web_call_slots
        return threading.BoundedSemaphore(slots) if slots else None

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

    def resolve(self, target: Target, deadline: float | None = None) -> list[IPAddress]:
        """Every address of the host, each checked; any refused address refuses the host."""
        if not self.policy.may_use_port(target.host, target.port):
            raise BlockedDestination(f"port {target.port}")
        deadline = deadline or time.monotonic() + self.policy.total_timeout
        lookup = _lookups.submit(self.resolver, target.host, target.port, type=socket.SOCK_STREAM)
        try:
            infos = lookup.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            lookup.cancel()
            raise TimedOut("dns") from None
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
        refused = [a for a in addresses if not self.policy.admits(target.host, a, target.port)]
        if refused:
            if all(is_public(a) for a in refused):
                raise BlockedDestination(f"port {target.port}")
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
        gate = self.web_gate if self.web_gate is not None and self.on_web_thread() else None
        if gate is not None and not gate.acquire(timeout=min(WEB_GATE_WAIT, max(0.0, deadline - started))):
            raise Busy("busy")
        try:
            return self._request(method, url, target, started, deadline, headers, json, data, auth)
        finally:
            if gate is not None:
                gate.release()

    def _request(self, method, url, target, started, deadline, headers, json, data, auth) -> Response:
        addresses = self.resolve(target, deadline)
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
            slot = self.slot(target.host)
            if not slot.acquire(timeout=remaining):
                raise TimedOut("host busy")
            try:
                response = self._send(prepared, deadline)
            except _ConnectFailed as exc:
                last_error = exc.error  # nothing was sent: the next address may answer
                continue
            finally:
                slot.release()
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

    def _send(self, prepared: requests.PreparedRequest, deadline: float) -> Response:
        watch = _reaper.watch(deadline)
        _current.watch = watch
        try:
            return self._send_watched(prepared, deadline)
        except OutboundError:
            if watch.fired:
                raise TimedOut("deadline") from None
            raise
        except _ConnectFailed:
            if watch.fired:
                raise TimedOut("deadline") from None
            raise
        finally:
            _current.watch = None
            watch.finish()

    def _send_watched(self, prepared: requests.PreparedRequest, deadline: float) -> Response:
        remaining = max(0.001, deadline - time.monotonic())  # each read waits at most the time left
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
        if time.monotonic() > deadline:  # a body cut short by the watchdog may look complete
            raise TimedOut("body")
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
    from flask import has_request_context  # the app's client; this module needs no Flask otherwise

    policy = Policy.from_config(config)
    return GuardedClient(policy, resolver or socket.getaddrinfo, has_request_context)


def join_url(base: str, *parts: str | int) -> str:
    path = "/".join(str(p).strip("/") for p in parts if str(p).strip("/"))
    return base.rstrip("/") + ("/" + path if path else "")
