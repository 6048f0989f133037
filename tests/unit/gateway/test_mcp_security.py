"""Which Host and Origin headers /mcp accepts."""

from __future__ import annotations

import pytest
from mcp.server.transport_security import TransportSecurityMiddleware

from asya.gateway.mcp_security import transport_security


@pytest.fixture
def check() -> TransportSecurityMiddleware:
    return TransportSecurityMiddleware(
        transport_security(["gw.example.com", "api.example.com:8443"], ["https://ui.example.com"])
    )


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:8080", "localhost", "localhost:3000", "[::1]:8080", "gw.example.com",
     "gw.example.com:443", "api.example.com:8443"],
)  # fmt: skip
def test_loopback_and_configured_hosts_pass(check: TransportSecurityMiddleware, host: str) -> None:
    assert check._validate_host(host)


@pytest.mark.parametrize("host", ["evil.test", "evil.test:8080", "api.example.com:80", ""])
def test_other_hosts_fail(check: TransportSecurityMiddleware, host: str) -> None:
    assert not check._validate_host(host)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("http://localhost:5173", True),
        ("https://127.0.0.1", True),
        ("https://ui.example.com", True),
        ("http://ui.example.com", False),
        ("http://evil.test", False),
    ],
)
def test_origins(check: TransportSecurityMiddleware, origin: str | None, allowed: bool) -> None:
    assert check._validate_origin(origin) is allowed
