"""The terminal client of the gateway (SPEC §9): arguments, the HTTP/SSE client, progress."""
