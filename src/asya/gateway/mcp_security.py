"""Host and Origin checks for ``/mcp`` (DNS-rebinding protection, the SDK's transport security).

A browser page on another site can reach a gateway on localhost through a DNS name that
resolves to 127.0.0.1; the Host and Origin headers give it away. Loopback names are always
allowed; a deployment behind an ingress adds its public names with ``ASYA_GATEWAY_ALLOWED_HOSTS``
(``name`` or ``name:port``; a bare name allows any port) and ``ASYA_GATEWAY_ALLOWED_ORIGINS``
(``https://app.example.com``). A request with another Host is answered 421, with another Origin
403; a request without Origin (not from a browser) passes the Origin check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mcp.server.transport_security import TransportSecuritySettings

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_HAS_PORT = re.compile(r":(\d+|\*)$")


def _any_port(names: Iterable[str]) -> list[str]:
    allowed: list[str] = []
    for name in names:
        allowed.append(name)
        if not _HAS_PORT.search(name):
            allowed.append(f"{name}:*")
    return allowed


def transport_security(
    hosts: Iterable[str] = (), origins: Iterable[str] = ()
) -> TransportSecuritySettings:
    loopback_origins = [
        f"{scheme}://{name}" for scheme in ("http", "https") for name in LOOPBACK_NAMES
    ]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=_any_port([*LOOPBACK_NAMES, *hosts]),
        allowed_origins=_any_port([*loopback_origins, *origins]),
    )
