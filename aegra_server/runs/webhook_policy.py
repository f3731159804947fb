"""Which webhook URLs a run may name, and where a delivery may connect: the server must not become a way to
reach what only it can reach (server-side request forgery).

The rules are langgraph-api's: the URL's scheme, length, port and host against `webhooks.url` in aegra.json;
then every address the host resolves to. Always refused: link-local (169.254/16, fe80::/10, cloud metadata
among them), the metadata services' names and addresses, Kubernetes' internal names, multicast, reserved and
documentation ranges. Loopback unless `disable_loopback` is false; private ranges when `disable_private_ips`.
A host named in `allowed_domains` exactly is trusted without looking at its addresses. A relative URL ("/hook")
names a route of this server itself (a custom route of `http.app`, say), so it is loopback too.

A run's URL is checked when the run (or cron) is created, so the client learns at once; the delivery checks
again and connects to the very address it checked (DNS may answer differently the second time).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aegra_server.config import WebhookUrlPolicy

_ALWAYS_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8", "169.254.0.0/16", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "fe80::/10", "ff00::/8", "::ffff:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48",
    )
)
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_PRIVATE = tuple(
    ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.amazonaws.com", "metadata", "instance-data"})
_LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "host.docker.internal"})
_LOOPBACK_HINT = 'set "webhooks": {"url": {"disable_loopback": false}} in aegra.json to allow it'


class WebhookRefused(ValueError):
    """The URL breaks the policy; the message says how."""


class WebhookPolicy:
    def __init__(self, policy: WebhookUrlPolicy) -> None:
        self.policy = policy
        self._exact = frozenset(d for d in policy.allowed_domains if not d.startswith("*."))
        self._wildcards = tuple(d[1:] for d in policy.allowed_domains if d.startswith("*."))  # ".example.com"

    async def check(self, url: str) -> tuple[str, str | None]:
        """The host and the address to connect to (None: connect by name, a host allowed by name; for a relative
        URL, host "" and None), or WebhookRefused."""
        if self.is_relative(url):
            return "", None
        host, port = self._check_url(url)
        if host in self._exact or (not self.policy.disable_loopback and host in _LOCALHOST_NAMES):
            return host, None
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self._check_address(literal)
            return host, str(literal)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise WebhookRefused(f"the host {host!r} does not resolve") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
        for address in addresses:
            self._check_address(address)
        return host, str(addresses[0])

    def is_relative(self, url: str) -> bool:
        """A path on this server ("/hook"), allowed only where loopback is; WebhookRefused otherwise."""
        if not url.startswith("/") or url.startswith("//"):
            return False
        if len(url) > self.policy.max_url_length:
            raise WebhookRefused(f"longer than {self.policy.max_url_length} characters")
        if self.policy.disable_loopback:
            raise WebhookRefused(f"a relative URL is a route of this server ({_LOOPBACK_HINT})")
        return True

    def _check_url(self, url: str) -> tuple[str, int]:
        policy = self.policy
        if len(url) > policy.max_url_length:
            raise WebhookRefused(f"longer than {policy.max_url_length} characters")
        if url.startswith("//"):
            raise WebhookRefused("has no scheme: give an http or https URL")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise WebhookRefused(f"not a URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise WebhookRefused("must be an http or https URL")
        if policy.require_https and scheme != "https":
            raise WebhookRefused("must use https (webhooks.url.require_https)")
        host = (parts.hostname or "").lower()
        if not host:
            raise WebhookRefused("has no host")
        port = port or (443 if scheme == "https" else 80)
        if policy.allowed_ports and port not in policy.allowed_ports:
            raise WebhookRefused(f"port {port} is not in webhooks.url.allowed_ports")
        if policy.allowed_domains and host not in self._exact and not host.endswith(self._wildcards):
            raise WebhookRefused(f"the host {host!r} is not in webhooks.url.allowed_domains")
        if host in self._exact:
            return host, port  # named exactly by the operator: trusted as named
        if host in _METADATA_NAMES or host.endswith(".svc.cluster.local"):
            raise WebhookRefused(f"the host {host!r} is internal to the platform")
        if policy.disable_loopback and host in _LOCALHOST_NAMES:
            raise WebhookRefused(f"the host {host!r} is this machine ({_LOOPBACK_HINT})")
        return host, port

    def _check_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        # Loopback first: ::1 also lies in the deprecated IPv4-compatible range (::/96) refused below.
        if address.is_loopback:
            if self.policy.disable_loopback:
                raise WebhookRefused(f"{address} is this machine ({_LOOPBACK_HINT})")
            return
        # IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64) are refused outright, as in
        # langgraph-api: judging the carried address would need every such form right.
        if address in _METADATA_ADDRESSES or _within(address, _ALWAYS_BLOCKED):
            raise WebhookRefused(f"{address} is a reserved, link-local or metadata address")
        if self.policy.disable_private_ips and _within(address, _PRIVATE):
            raise WebhookRefused(f"{address} is a private address (webhooks.url.disable_private_ips)")


def _within(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple) -> bool:
    return any(address.version == net.version and address in net for net in networks)
