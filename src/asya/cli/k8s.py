"""``asya operator`` and ``asya k8s``: the Kubernetes side of Asya
(docs/reference/asyncactor.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
import yaml

from asya.errors import ConfigError

if TYPE_CHECKING:
    from asya.k8s.mesh import MeshObjects
    from asya.up.config import MeshConfig


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


def _load_documents(file: IO[str]) -> tuple[str, list[Any]]:
    text = file.read()
    try:
        return text, [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{file.name}: not valid YAML: {exc}") from exc


def _mesh_path(file: IO[str]) -> Path:
    """Where the asya.yaml lives (its relative paths resolve there); stdin: the current folder."""
    if file.name in ("<stdin>", "-"):
        return Path.cwd() / "asya.yaml"
    return Path(file.name).resolve()


def _mesh_objects(
    file: IO[str], text: str, image: str | None, namespace: str | None
) -> tuple[MeshConfig, MeshObjects]:
    """asya.yaml's Kubernetes objects; every problem is printed and exits 1."""
    from asya.k8s.mesh import MeshExportError, MeshOptions, mesh_objects
    from asya.up.config import MeshConfigError, parse_config

    try:
        config = parse_config(text, _mesh_path(file), file.name)
        return config, mesh_objects(config, MeshOptions(image=image, namespace=namespace))
    except (MeshConfigError, MeshExportError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


_IMAGE_HELP = "Image of actors without image: in asya.yaml (their handler code inside)."


@k8s.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--sidecar-image",
    envvar="ASYA_SIDECAR_IMAGE",
    default=None,
    help="Sidecar image for actors that name none (default: asya:latest).",
)
@click.option("-n", "--namespace", help="Namespace for objects that set none.")
@click.option("--image", help=_IMAGE_HELP)
def render(
    file: IO[str], sidecar_image: str | None, namespace: str | None, image: str | None
) -> None:
    """Print the Kubernetes objects for FILE: AsyncActors or an asya.yaml (YAML, - for stdin).

    For AsyncActors: the objects the operator would create for each (documents of other kinds
    are printed unchanged; owner references only for actors that carry a metadata.uid). For an
    asya.yaml: one AsyncActor per actor, the gateway's tools ConfigMap and the crew.
    """
    from asya.k8s.crd import InvalidActorError
    from asya.k8s.inputs import (
        describe,
        is_async_actor,
        is_kubernetes_object,
        is_mesh_file,
        neither_message,
    )
    from asya.k8s.render import RenderOptions
    from asya.k8s.render import render as render_actor

    text, documents = _load_documents(file)
    if is_mesh_file(documents):
        _, mesh = _mesh_objects(file, text, image, namespace)
        click.echo(dump_all(mesh.all()), nl=False)
        return
    if not any(is_async_actor(doc) for doc in documents):
        raise click.ClickException(f"{file.name}: {neither_message(documents)}")
    options = RenderOptions(sidecar_image=sidecar_image) if sidecar_image else RenderOptions()
    objects: list[dict[str, Any]] = []
    failures: list[str] = []
    for index, doc in enumerate(documents):
        if not is_async_actor(doc):
            if is_kubernetes_object(doc):
                objects.append(doc)
            else:
                failures.append(f"document {index + 1}: not a Kubernetes object: {describe(doc)}")
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
    click.echo(dump_all(objects), nl=False)


@k8s.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write (created if missing; files of the same name are replaced).",
)
@click.option("--image", help=_IMAGE_HELP)
@click.option("-n", "--namespace", help="Namespace the kustomization puts everything in.")
@click.option(
    "--base",
    help="deploy/ folder (a path) or a kustomize remote, e.g. github.com/ORG/asya//deploy?ref=v1 "
    "(default: the deploy/ folder above asya.yaml or the current directory).",
)
def export(
    file: IO[str], output: Path, image: str | None, namespace: str | None, base: str | None
) -> None:
    """Write a Kustomize folder that runs the asya.yaml FILE on a cluster.

    One AsyncActor file per actor, the gateway's tools as a patch of deploy/gateway's ConfigMap,
    and a kustomization.yaml with deploy/'s bases: apply with kubectl apply -k DIR.
    """
    from asya.k8s.inputs import is_mesh_file, not_mesh_message
    from asya.k8s.kustomize import BaseNotFoundError, Bases, export_files

    text, documents = _load_documents(file)
    if not is_mesh_file(documents):
        raise click.ClickException(f"{file.name}: {not_mesh_message(documents)}")
    config, mesh = _mesh_objects(file, text, image, None)
    try:
        bases = Bases.resolve(base, output, config.folder, Path.cwd())
    except BaseNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    for relative, (header, document) in export_files(mesh, bases, namespace, file.name).items():
        path = output / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + dump_all([document]), encoding="utf-8")
    click.echo(f"wrote {output}/ ({len(mesh.actors)} actors): kubectl apply -k {output}")


@k8s.command()
def crd() -> None:
    """Print the AsyncActor CustomResourceDefinition (what deploy/crd applies)."""
    from asya.k8s.crd import crd_yaml

    click.echo(crd_yaml(), nl=False)
