"""The operator's own settings (not part of any AsyncActor), read once at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from asya.envconfig import Env
from asya.k8s.render import DEFAULT_SIDECAR_IMAGE


@dataclass(frozen=True)
class OperatorSettings:
    """``ASYA_OPERATOR_NAMESPACES`` (comma list; empty = every namespace),
    ``ASYA_SIDECAR_IMAGE`` (default sidecar image), ``ASYA_OPERATOR_DECLARE_QUEUES`` (declare
    each actor's queue on the broker, default true), ``ASYA_OPERATOR_LIVENESS`` (kopf's
    liveness endpoint URL, empty = none).
    """

    namespaces: tuple[str, ...] = ()
    sidecar_image: str = DEFAULT_SIDECAR_IMAGE
    declare_queues: bool = True
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OperatorSettings:
        env = Env(environ)
        namespaces = env.get_str("ASYA_OPERATOR_NAMESPACES", "")
        return cls(
            namespaces=tuple(ns.strip() for ns in namespaces.split(",") if ns.strip()),
            sidecar_image=env.get_str("ASYA_SIDECAR_IMAGE", DEFAULT_SIDECAR_IMAGE),
            declare_queues=env.get_bool("ASYA_OPERATOR_DECLARE_QUEUES", True),
            liveness_endpoint=env.get_str("ASYA_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz")
            or None,
        )
