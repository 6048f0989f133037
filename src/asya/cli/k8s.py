"""``asya operator`` and ``asya k8s``: the Kubernetes side of Asya
(docs/reference/asyncactor.md)."""

from __future__ import annotations

import os
import sys
from typing import IO, Any

import click
import yaml

from asya.errors import ConfigError

ASYA_GROUP_PREFIX = "asya.io/"


class _LiteralDumper(yaml.SafeDumper):
    """YAML with multi-line strings (the runtime file) as readable literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def dump_all(objects: list[dict[str, Any]]) -> str:
    return yaml.dump_all(
        objects, Dumper=_LiteralDumper, sort_keys=False, explicit_start=True, allow_unicode=True
    )


@click.command()
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch only these namespaces (default: ASYA_OPERATOR_NAMESPACES, else all).",
)
@click.option(
    "--sidecar-image", help="Sidecar image when an actor names none (ASYA_SIDECAR_IMAGE)."
)
@click.option(
    "--declare-queues/--no-declare-queues",
    default=None,
    help="Declare each actor's queue on the broker (ASYA_OPERATOR_DECLARE_QUEUES, default on).",
)
def operator(
    namespaces: tuple[str, ...], sidecar_image: str | None, declare_queues: bool | None
) -> None:
    """Run the AsyncActor operator (kopf) against the current cluster."""
    from dataclasses import replace

    from asya.k8s.settings import OperatorSettings
    from asya.logconfig import configure_logging

    configure_logging("operator")
    try:
        settings = OperatorSettings.from_env(os.environ)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    overrides: dict[str, Any] = {}
    if namespaces:
        overrides["namespaces"] = namespaces
    if sidecar_image:
        overrides["sidecar_image"] = sidecar_image
    if declare_queues is not None:
        overrides["declare_queues"] = declare_queues

    from asya.k8s.api import ApiError
    from asya.k8s.operator import run

    try:
        run(replace(settings, **overrides))
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@click.group()
def k8s() -> None:
    """Render AsyncActors into Kubernetes objects without a cluster."""


@k8s.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--sidecar-image",
    envvar="ASYA_SIDECAR_IMAGE",
    default=None,
    help="Sidecar image for actors that name none (default: asya:latest).",
)
@click.option("-n", "--namespace", help="Namespace for actors that set none.")
def render(file: IO[str], sidecar_image: str | None, namespace: str | None) -> None:
    """Print the objects the operator would create for each AsyncActor in FILE (YAML).

    Documents of other kinds are printed unchanged. Owner references are added only for
    actors that carry a metadata.uid (that is, ones read back from a cluster).
    """
    from asya.k8s.crd import KIND, InvalidActorError
    from asya.k8s.render import RenderOptions
    from asya.k8s.render import render as render_actor

    try:
        documents = [doc for doc in yaml.safe_load_all(file) if doc is not None]
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{file.name}: not valid YAML: {exc}") from exc
    options = RenderOptions(sidecar_image=sidecar_image) if sidecar_image else RenderOptions()
    objects: list[dict[str, Any]] = []
    failures: list[str] = []
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict):
            failures.append(f"document {index + 1}: expected a mapping, got {type(doc).__name__}")
            continue
        api_version = str(doc.get("apiVersion", ""))
        if not api_version.startswith(ASYA_GROUP_PREFIX) and doc.get("kind") != KIND:
            objects.append(doc)
            continue
        if namespace and isinstance(doc.get("metadata"), dict):
            doc["metadata"].setdefault("namespace", namespace)
        try:
            objects.extend(render_actor(doc, options))
        except InvalidActorError as exc:
            failures.append(f"document {index + 1}: {exc}")
    if failures:
        for failure in failures:
            click.echo(f"error: {failure}", err=True)
        sys.exit(1)
    if not objects:
        raise click.ClickException(f"{file.name}: no AsyncActor found")
    click.echo(dump_all(objects), nl=False)


@k8s.command()
def crd() -> None:
    """Print the AsyncActor CustomResourceDefinition (what deploy/crd applies)."""
    from asya.k8s.crd import crd_yaml

    click.echo(crd_yaml(), nl=False)
