"""Where a webhook may go: an http(s) URL whose host resolves to public addresses only (the SSRF guard).

An endpoint's URL is checked twice: when it is saved (``validate_url``, the model field's validator) and again at
each delivery (``resolve``), since DNS can change in between. The delivery then connects to the very addresses
that were checked (``webhooks.transport``), never resolving the name a second time: a DNS rebind between the
check and the connection cannot reach an internal address.

``WEBHOOKS_ALLOW_PRIVATE_TARGETS = True`` turns the address checks off (the scheme and credentials checks stay).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from . import conf
from .exceptions import TargetRefused, TargetUnresolvable

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # a NAT64 gateway turns these into the IPv4 address they end with
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``addresses``, in order) and what to ask for there."""

    scheme: str
    host: str  # the name (or IP) of the URL, without IPv6 brackets: TLS checks the certificate against it
    port: int
    request_uri: str  # path and query
    host_header: str
    addresses: tuple[str, ...]


def validate_url(url: str) -> None:
    """Refuse a URL a webhook may not be sent to: the model field's validator (no DNS lookup when private targets
    are allowed).

    Raises:
        TargetRefused: not http(s), credentials in it, or (private targets not allowed) a host that does not
            resolve or resolves to an internal address.
    """
    parsed = _parse(url)
    if not conf.allow_private_targets():
        try:
            _addresses(parsed.host, parsed.port, check=True)
        except TargetUnresolvable as e:
            raise TargetRefused(str(e)) from e


def resolve(url: str) -> Target:
    """Parse ``url`` and resolve its host once, for a delivery; check the addresses unless private targets are on.

    Raises:
        TargetRefused: as :func:`validate_url`.
        TargetUnresolvable: the DNS lookup failed (maybe for a moment: a delivery retries it).
    """
    parsed = _parse(url)
    addresses = _addresses(parsed.host, parsed.port, check=not conf.allow_private_targets())
    default_port = parsed.port == DEFAULT_PORTS[parsed.scheme]
    bracketed = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return Target(scheme=parsed.scheme, host=parsed.host, port=parsed.port, request_uri=parsed.request_uri,
                  host_header=bracketed if default_port else f"{bracketed}:{parsed.port}", addresses=addresses)


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is no place for a webhook ("loopback", "private"...), or None for a public address.

    IPv6 addresses that carry an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, 6to4, NAT64) are judged by that one.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)  # Python counts all of ::ffff:0:0/96 and 64:ff9b::/96 as private or reserved
    for reason, flag in (("loopback", address.is_loopback), ("unspecified", address.is_unspecified),
                         ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                         ("private", address.is_private), ("reserved", address.is_reserved)):
        if flag:
            return reason
    if not address.is_global:  # e.g. 100.64.0.0/10, a carrier's NAT
        return "non-public"
    return None


@dataclass(frozen=True)
class _Parsed:
    scheme: str
    host: str
    port: int
    request_uri: str


def _parse(url: str) -> _Parsed:
    try:
        parsed = parse_url(url)
    except LocationParseError:
        raise TargetRefused(f"{url!r} is not a URL.") from None
    scheme = (parsed.scheme or "").lower()
    if scheme not in SCHEMES:
        raise TargetRefused(f"Only http and https URLs can receive webhooks, not {scheme or 'a URL without a scheme'}"
                            f"{'://' if scheme else ''}.")
    if parsed.auth:
        raise TargetRefused("Credentials in the URL are not supported: receivers authenticate deliveries by their "
                            "X-Webhook-Signature.")
    if not parsed.host:
        raise TargetRefused(f"The URL {url!r} has no host.")
    host = parsed.host.strip("[]").lower()
    return _Parsed(scheme, host, parsed.port or DEFAULT_PORTS[scheme], parsed.request_uri)


def _addresses(host: str, port: int, *, check: bool) -> tuple[str, ...]:
    """The host's addresses (one lookup), each checked when ``check``; any internal one refuses the host."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise TargetUnresolvable(f"The host {host!r} cannot be resolved ({e}).") from e
    addresses = tuple(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if check:
        for address in addresses:
            ip = ipaddress.ip_address(address)
            reason = refusal(ip)
            if reason is not None:
                what = f"{address} is" if host == address else f"{host!r} resolves to {address},"
                raise TargetRefused(f"{what} a {reason} address: webhooks go to public addresses only "
                                    "(WEBHOOKS_ALLOW_PRIVATE_TARGETS is off).")
    return addresses
