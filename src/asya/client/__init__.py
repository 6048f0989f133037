"""The terminal client of the gateway (docs/reference/cli.md#asya-call): arguments, the HTTP/SSE
client, progress."""
