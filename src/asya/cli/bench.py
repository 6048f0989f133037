"""``asya bench [NAME] [ARGS...]``: run the benchmarks kept in the repository's ``benchmarks/``.

Each ``benchmarks/<name>.py`` defines ``main(argv: list[str]) -> int`` and prints its results as
a table with its comparison run beside it (docs/reference/cli.md#asya-bench). Without a name every
benchmark runs.
``--vs celery`` compares against Celery; only the pipeline benchmark has that comparison, so it
alone runs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import click


def find_benchmarks_dir(start: Path) -> Path | None:
    """The nearest ``benchmarks/`` folder holding ``common.py``, from ``start`` upwards."""
    for folder in (start, *start.parents):
        candidate = folder / "benchmarks"
        if (candidate / "common.py").is_file():
            return candidate
    return None


def available(bench_dir: Path) -> list[str]:
    return sorted(
        p.stem for p in bench_dir.glob("*.py") if p.stem != "common" and not p.stem.startswith("_")
    )


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name", required=False)
@click.option(
    "--vs",
    "versus",
    type=click.Choice(["celery"]),
    help="Also run the same no-op pipeline in Celery (the pipeline benchmark).",
)
@click.pass_context
def bench(ctx: click.Context, name: str | None, versus: str | None) -> None:
    """Run benchmark NAME (runtime, relay, pipeline, gateway), or all of them.

    Options after NAME go to that benchmark (asya bench relay --messages 1000).
    """
    if name is not None and name.startswith("-"):
        raise click.UsageError(
            f"unknown option {name!r}: a benchmark's own options go after its name "
            f"(asya bench NAME {name} ...)"
        )
    extra = list(ctx.args)
    if versus is not None:
        if name not in (None, "pipeline"):
            raise click.UsageError(f"--vs {versus} compares the pipeline benchmark, not {name!r}")
        name = "pipeline"
        extra += ["--vs", versus]
    bench_dir = find_benchmarks_dir(Path.cwd()) or find_benchmarks_dir(Path(__file__).parent)
    if bench_dir is None:
        raise click.ClickException("no benchmarks/ folder found: run from an Asya checkout")
    names = available(bench_dir)
    if name is not None and name not in names:
        raise click.UsageError(f"unknown benchmark {name!r}; choose from: {', '.join(names)}")
    sys.path.insert(0, str(bench_dir.parent))
    status = 0
    for bench_name in [name] if name else names:
        spec = importlib.util.spec_from_file_location(
            f"benchmarks.{bench_name}", bench_dir / f"{bench_name}.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        status |= int(module.main(extra))
    sys.exit(status)
