"""The webhook URL policy on literal addresses and names that need no DNS (runs/webhook_policy.py)."""

from __future__ import annotations

import pytest

from aegra_server.config import WebhooksConfig, WebhookUrlPolicy
from aegra_server.runs.webhook_policy import WebhookPolicy, WebhookRefused

DEFAULT = WebhookPolicy(WebhooksConfig().policy)  # no `webhooks` in aegra.json


async def refused(policy: WebhookPolicy, url: str) -> str:
    with pytest.raises(WebhookRefused) as raised:
        await policy.check(url)
    return str(raised.value)


@pytest.mark.parametrize("url", [
    "http://203.0.114.9/hook", "https://8.8.8.8:8443/x", "http://10.1.2.3/", "http://192.168.1.5/", "http://[2001:db8::1]/",
])
async def test_public_and_private_addresses_pass_by_default_and_are_connected_to_as_checked(url: str) -> None:
    host, address = await DEFAULT.check(url)
    assert address == host.strip("[]")


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1/", "this machine"),
    ("http://127.9.9.9/", "this machine"),
    ("http://[::1]/", "this machine"),
    ("http://LOCALHOST:80/", "this machine"),
    ("http://host.docker.internal/", "this machine"),
    ("http://169.254.169.254/", "metadata"),
    ("http://169.254.1.1/", "link-local"),
    ("http://100.100.100.200/", "metadata"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[::ffff:10.0.0.1]/", "reserved"),
    ("http://[64:ff9b::a00:1]/", "reserved"),
    ("http://0.0.0.0/", "reserved"),
    ("http://224.0.0.1/", "reserved"),
    ("http://metadata/", "internal"),
    ("http://api.default.svc.cluster.local/", "internal"),
    ("gopher://example.com/", "http or https"),
    ("http://:80/", "no host"),
    ("http://example.com:99999/", "not a URL"),
    ("http://x/" + "a" * 4096, "longer than 4096"),
])
async def test_refused_by_default(url: str, why: str) -> None:
    assert why in await refused(DEFAULT, url)


async def test_a_written_policy() -> None:
    policy = WebhookPolicy(WebhookUrlPolicy(
        allowed_domains=["hooks.example.com", "*.corp.example"], allowed_ports=[443, 8443], disable_private_ips=True
    ))
    assert "https" in await refused(policy, "http://hooks.example.com/")  # require_https once a policy is written
    assert await policy.check("https://hooks.example.com/x") == ("hooks.example.com", None)  # trusted by name
    assert "allowed_domains" in await refused(policy, "https://corp.example/")  # a wildcard is for subdomains only
    assert "allowed_domains" in await refused(policy, "https://evil.com/")
    # A subdomain on an allowed port passes the URL's rules and goes on to DNS (which knows no such name here).
    assert "does not resolve" in await refused(policy, "https://a.corp.example:8443/")
    assert "port 9000" in await refused(policy, "https://hooks.example.com:9000/")
    private = WebhookPolicy(WebhookUrlPolicy(disable_private_ips=True))
    for address in ("10.0.0.1", "172.16.0.1", "192.168.0.1", "100.64.0.1", "[fd00::1]"):
        assert "private" in await refused(private, f"https://{address}/"), address
    assert "longer than 2048" in await refused(private, "https://x/" + "a" * 2048)
    loopback = WebhookPolicy(WebhookUrlPolicy(disable_loopback=False))
    assert await loopback.check("https://localhost:8000/") == ("localhost", None)
    assert await loopback.check("https://[::1]/") == ("::1", "::1")
    assert "reserved" in await refused(loopback, "https://169.254.169.254/")  # loopback allowed, metadata never
    # What the operator names exactly is trusted, even a name internal to a cluster.
    internal = WebhookPolicy(WebhookUrlPolicy(allowed_domains=["hooks.ops.svc.cluster.local"]))
    assert await internal.check("https://hooks.ops.svc.cluster.local/") == ("hooks.ops.svc.cluster.local", None)
    assert "allowed_domains" in await refused(internal, "https://other.ops.svc.cluster.local/")
