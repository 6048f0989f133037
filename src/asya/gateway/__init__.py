"""The gateway: pipelines as MCP tools and REST endpoints, jobs in PostgreSQL/SQLite, SSE.

Start with :func:`asya.gateway.app.create_app`; ``docs/gateway.md`` describes the behaviour.
"""
