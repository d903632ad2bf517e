"""Command-line options declared once, as dataclass fields, and shared by the commands that take them.

An options dataclass lists its fields with `option(default, help, *flags)`. A command names it as one
parameter (`llm: ModelOptions`); `@uses_options` spreads its fields into the command's typer options and
hands the command the filled-in dataclass, so the command itself only turns options into job configs:

    @dataclass
    class WorkerOptions:
        workers: int | None = option(None, "local worker processes")

    @app.command()
    @uses_options
    def score(out: str = typer.Option(...), run: WorkerOptions = WorkerOptions()) -> None:
        ...run.workers...
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import typing
from typing import Any, Callable

import typer


def option(default: Any, help: str, *flags: str, **typer_kwargs: Any):
    """A dataclass field that is also a typer option (`flags` as typer.Option takes them, e.g. "--no-dedup")."""
    return dataclasses.field(default=default,
                             metadata={"option": typer.Option(default, *flags, help=help, **typer_kwargs)})


def uses_options(fn: Callable) -> Callable:
    """Spread the options-dataclass parameters of a typer command into their fields' options (see module doc)."""
    hints = typing.get_type_hints(fn)
    params: list[inspect.Parameter] = []
    groups: dict[str, type] = {}
    for name, param in inspect.signature(fn).parameters.items():
        kind = hints.get(name, param.annotation)
        if dataclasses.is_dataclass(kind):
            groups[name] = kind
            field_hints = typing.get_type_hints(kind)
            params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.metadata["option"],
                                         annotation=field_hints[f.name]) for f in dataclasses.fields(kind)]
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=kind))
    names = [p.name for p in params]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise TypeError(f"{fn.__name__}: options declared twice: {clashes}")

    @functools.wraps(fn, assigned=("__module__", "__name__", "__qualname__", "__doc__"), updated=())
    def command(**kwargs: Any):
        for name, kind in groups.items():
            kwargs[name] = kind(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(kind)})
        return fn(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


@dataclasses.dataclass
class WorkerOptions:
    """How many local worker processes a job runs on (every job command)."""

    workers: int | None = option(None, "local Beam worker processes (default: the job's own)")

    def runner(self, default):
        """The job's RunnerConfig `default` with the worker count given here."""
        return dataclasses.replace(default, workers=self.workers) if self.workers else default


def fail(message: str, code: int = 2) -> typing.NoReturn:
    """A known failure: one red line on stderr saying what to do, and exit status `code` (2: bad input). The
    message may quote data (a document, a predicate): its control characters are not sent to the terminal."""
    from assay.groundwork.terminal import printable

    typer.secho(f"error: {printable(message)}", err=True, fg="red")
    raise typer.Exit(code)


@contextlib.contextmanager
def known_errors(*kinds: type[BaseException]):
    """Failures of these kinds (bad input, a missing file, a model that cannot load) end the command with
    their message as one line and exit status 2, not a traceback."""
    try:
        yield
    except kinds as exc:
        fail(str(exc))
