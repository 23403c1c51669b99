"""The command line: parse options, make one library call, present the result.

stdout carries data (--json prints exactly one JSON document); stderr carries people's output.
Exit codes: 0 ran, 1 a --fail-above gate tripped, 2 bad usage or bad input, 3 an internal
error (a bug: one line on stderr, the traceback saved to a file).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Annotated, get_type_hints

import typer
import typer.core

from . import settings as declarations
from .errors import UsageError
from .settings import declared, default_out, field_named, panel


class _GuardedGroup(typer.core.TyperGroup):
    """Report any exception that escapes the library as an internal error: exit 3, never 1.

    Exit 1 belongs to a tripped --fail-above gate, so a CI job must never see a crash as one.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _cli_exceptions():
            raise
        except Exception as exc:  # noqa: BLE001 - the last guard; the traceback is saved
            saved = _save_traceback()
            first = (str(exc).splitlines() or [""])[0][:300]
            sys.stderr.write(f"internal error: {type(exc).__name__}: {first} (this is a "
                             f"labelaudit bug, not your input; the traceback is in {saved}; "
                             "please report it with that file)\n")
            raise typer.Exit(INTERNAL_ERROR) from None


INTERNAL_ERROR = 3


def _cli_exceptions() -> tuple:
    """The exceptions that carry an exit code or a usage message: typer's and click's own."""
    import importlib

    kinds = [typer.Exit, typer.Abort]
    # typer >= 0.20 carries its own copy of click; older ones use click itself.
    for name in ("click.exceptions", "typer._click.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        kinds += [getattr(module, k) for k in ("ClickException", "Exit", "Abort")
                  if hasattr(module, k)]
    return tuple(kinds)


def _save_traceback() -> str:
    """Write the current exception's traceback to a new temporary file; return its path."""
    import tempfile
    import traceback

    handle, name = tempfile.mkstemp(prefix="labelaudit-error-", suffix=".txt")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(f"labelaudit {_version()}, {' '.join(map(str, sys.argv))}\n\n")
        file.write(traceback.format_exc())
    return name


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("labelaudit")
    except PackageNotFoundError:  # run from a source tree
        from . import __version__

        return __version__


app = typer.Typer(
    cls=_GuardedGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    help="Watch the generalization gap; when it climbs steeply, find the mislabeled samples.",
)


def switch(*names: str, help: str):
    """A boolean flag option: only its own name, no type and no default in --help.

    >>> switch("--json", help="Print JSON.").metavar
    ''
    """
    return typer.Option(*names, help=help, metavar="", show_default=False)


def settings_options(*names: str, help: dict[str, str] | None = None):
    """Give a command an option for each named setting (with none named: every setting that has
    --help text), built from its declaration in labelaudit.settings; the command receives them
    in `**settings`, for `settings_values`.

    >>> @settings_options("cv", "audit")
    ... def command(*, quiet: bool = False, **settings): ...
    >>> list(inspect.signature(command).parameters)
    ['quiet', 'cv', 'audit']
    """
    chosen = ([field_named(name) for name in names] if names else
              [f for f in fields(declarations.ScanSettings) if declared(f).help is not None])

    def decorate(command):
        # typer reads a command's options from its signature.
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        options = [_option(f, (help or {}).get(f.name)) for f in chosen]
        command.__signature__ = signature.replace(parameters=own + options)
        return command
    return decorate


def _option(f, help_text: str | None) -> inspect.Parameter:
    """The keyword parameter that typer turns into the option of settings field `f`."""
    setting = declared(f)
    kind = (_choice_enum(f.name) if setting.choices else Path if setting.path else
            get_type_hints(declarations.ScanSettings)[f.name])
    default = kind(f.default) if setting.choices and f.default is not None else f.default
    if f.default is None:
        kind = kind | None
    flag = setting.flag
    extra = {}
    if kind is bool:  # a plain switch: --strict, not --strict/--no-strict <bool>
        flag = flag or "--" + f.name.replace("_", "-")
        extra = dict(metavar="", show_default=False)
    option = typer.Option(*filter(None, [flag]), help=help_text or setting.help,
                          rich_help_panel=panel(f), **extra)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, option])


@functools.cache
def _choice_enum(name: str) -> type[Enum]:
    """A str Enum of a setting's declared choices, which typer offers as the option's values."""
    choices = declared(field_named(name)).choices
    return Enum(name.title().replace("_", ""), {c: c for c in choices}, type=str)


def settings_values(given: dict) -> dict:
    """The options' values as ScanSettings takes them: choices and paths as plain strings.

    >>> settings_values({"audit": _choice_enum("audit")("never"), "reviewed": Path("d.csv")})
    {'audit': 'never', 'reviewed': 'd.csv'}
    """
    return {name: value.value if isinstance(value, Enum) else
            str(value) if isinstance(value, Path) else value for name, value in given.items()}


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def fail(message: str) -> None:
    """Print a user error to stderr and exit 2 (no traceback)."""
    # The message quotes paths, columns and advice like 'labelaudit[dask]': never rich markup.
    _console().print(f"[bold red]error:[/] {_escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(2)


def _escape(text) -> str:
    from rich.markup import escape

    return escape(str(text))


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"labelaudit {_version()}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", is_eager=True, callback=_print_version,
        metavar="")] = False,
) -> None:
    """labelaudit: audit dataset labels by watching the generalization gap."""


@app.command()
@settings_options()
def scan(
    path: Annotated[Path, typer.Argument(help="Image folder (class subfolders) or a "
                                         ".csv/.tsv/.parquet/.jsonl table.")],
    *,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder (default: ./NAME.labelaudit, NAME the dataset's).",
        show_default=False)] = None,
    fail_above: Annotated[float | None, typer.Option(
        help="Exit 1 when the estimated noise rate exceeds this rate (0-1).")] = None,
    no_cache: Annotated[bool, switch("--no-cache",
                                     help="Do not reuse or store folds and results.")] = False,
    json_out: Annotated[bool, switch("--json", help="Print summary.json to stdout.")] = False,
    quiet: Annotated[bool, switch("--quiet", "-q", help="No progress or summary.")] = False,
    **given,
) -> None:
    """Train with the gap watched; when it climbs steeply, rank likely label errors.

    Writes ./NAME.labelaudit/ (NAME: the dataset's), so no scan replaces another's report.

    [bold]Examples[/]

      labelaudit scan datasets/digits-noisy
      labelaudit scan reviews.csv --label-column sentiment --id-column review_id
      labelaudit scan wine-fixed.csv --reviewed wine-fixed.changes.csv
      labelaudit scan data.parquet --fail-above 0.05 --json > summary.json
    """
    from .progress import Progress
    from .scan import ScanSettings, check_out_dir, write_outputs
    from .scan import scan as run_scan

    if fail_above is not None and not 0 <= fail_above <= 1:
        fail(f"--fail-above must be a rate between 0 and 1, not {fail_above}")
    values = settings_values(given)
    out = out if out is not None else default_out(path)
    if no_cache:
        values["cache_dir"] = None
    elif values["cache_dir"] is None:
        values["cache_dir"] = str(out / "cache")
    settings = ScanSettings(**values)
    console = _console()
    log = (lambda m: None) if quiet else (lambda m: console.print(_escape(m), soft_wrap=True))
    progress = Progress(quiet=quiet, log=log)
    try:
        check_out_dir(path, out, cache=settings.cache_dir)
        with progress.running():
            result = run_scan(path, settings, progress=progress, log=log)
        log(f"writing the report to {out}")
        summary = write_outputs(result, out)
    except UsageError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print(f"interrupted: no report was written; anything already in {_escape(out)} "
                      "is unchanged")
        raise typer.Exit(130) from None
    if not quiet:
        _print_scan_summary(console, summary, out)
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    rate = summary["audit"]["estimated_noise_rate"]
    if fail_above is not None and rate is not None and rate > fail_above:
        console.print(f"estimated noise rate {rate:.1%} is above --fail-above {fail_above:.1%}")
        raise typer.Exit(1)


def _print_scan_summary(console, summary: dict, out: Path) -> None:
    from rich.table import Table

    ds, gap, audit = summary["dataset"], summary["gap"], summary["audit"]
    table = Table(title="labelaudit scan", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("dataset", _escape(f"{ds['path']} ({ds['kind']}, {ds['n_samples']} samples, "
                                     f"{ds['n_classes']} classes)"))
    if ds["n_skipped"]:
        table.add_row("skipped", f"{ds['n_skipped']} file(s) or row(s)")
    from .report import probabilities_source

    table.add_row("probabilities", _escape(probabilities_source(summary)))
    table.add_row("gap", f"{gap['regime']}"
                  + (f" (growth {gap['growth']:+.2f})" if gap.get("growth") is not None else ""))
    table.add_row("advice", _escape(gap["advice"]))
    table.add_row("audit", _escape(audit["reason"]))
    if audit["ran"]:
        table.add_row("flagged", f"{audit['n_flagged']} of {ds['n_samples']} samples")
        table.add_row("noise rate", f"{audit['estimated_noise_rate']:.1%} (estimated)")
    table.add_row("time", f"{summary['timings']['total']:.1f} s")
    table.add_row("report", _escape(str(out / "report.html")))
    console.print(table)


# --- more commands are added below this line ---


@app.command("apply")
def apply_command(
    data: Annotated[Path, typer.Argument(help="The dataset that was scanned (image folder or "
                                         "table); it is only read.")],
    decisions: Annotated[Path, typer.Argument(help="decisions.csv exported from report.html.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="The corrected copy. For a table, a name ending in its suffix "
        "(fixed.csv) is the corrected file, its change log beside it (fixed.changes.csv); any "
        "other name is a folder holding the copy and changes.csv.")],
    force: Annotated[bool, switch("--force", help=(
        "Replace what apply wrote at an existing --out (a file only with its change log "
        "beside it); nothing else is touched."))] = False,
    dry_run: Annotated[bool, switch("--dry-run", help="Print the changes (CSV on stdout); "
                                                      "write nothing.")] = False,
    label_column: Annotated[str | None, typer.Option(help="Table column with the labels.")] \
        = None,
    id_column: Annotated[str | None, typer.Option(help="Table column with stable ids.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of csv/tsv/jsonl files.")] = "utf-8",
    follow_symlinks: Annotated[bool, switch("--follow-symlinks", help=(
        "Follow symlinks that lead outside the dataset folder, as scan did."))] = False,
) -> None:
    """Write a corrected copy of DATA following the review decisions; DATA is never modified.

    A table without ids gets labelaudit_row (its original row numbers), so --reviewed fits.

    [bold]Examples[/]

      labelaudit apply datasets/wine-noisy.csv decisions.csv --out wine-fixed.csv
      labelaudit scan wine-fixed.csv --reviewed wine-fixed.changes.csv
      labelaudit apply digits decisions.csv --out digits-fixed --dry-run
    """
    from .apply import apply_decisions

    try:
        result = apply_decisions(data, decisions, out, force=force, dry_run=dry_run,
                                 label_column=label_column, id_column=id_column,
                                 encoding=encoding, follow_symlinks=follow_symlinks)
    except UsageError as exc:
        fail(str(exc))
    counts = result.counts
    tally = (f"{counts['relabel']} relabeled, {counts['remove']} removed, {counts['keep']} kept "
             f"as they were; {counts['unchanged']} of {counts['n_samples']} samples unchanged")
    if dry_run:
        sys.stdout.write(result.changes_csv())
        _console().print(_escape(f"dry run, nothing written: {tally}"), soft_wrap=True)
    else:
        _console().print(_escape(f"wrote {result.written}: {tally}; the list is in "
                                 f"{result.changes_file}"), soft_wrap=True)


@app.command()
def gap(
    path: Annotated[Path, typer.Argument(help=(
        "A training log: Lightning metrics.csv, Keras CSVLogger csv or history JSON, Hugging "
        "Face trainer_state.json (or its output folder), skorch history.json, a TensorBoard "
        "run folder or event file, or a csv with epoch, train and validation loss columns."))],
    train_key: Annotated[str | None, typer.Option(
        help="Column, key or TensorBoard tag of the training loss.")] = None,
    val_key: Annotated[str | None, typer.Option(
        help="Column, key or TensorBoard tag of the validation loss.")] = None,
    plot: Annotated[Path | None, typer.Option(
        help="Write the curves, gap shaded, to this .svg or .png file.")] = None,
    json_out: Annotated[bool, switch("--json", help="Print the diagnosis as JSON.")] = False,
    quiet: Annotated[bool, switch("--quiet", "-q", help="No summary on stderr.")] = False,
) -> None:
    """Diagnose the generalization gap in a training log your framework already wrote.

    [bold]Examples[/]

      labelaudit gap lightning_logs/version_0/metrics.csv --plot curves.svg
      labelaudit gap trainer_state.json --json
      labelaudit gap runs/exp1 --train-key loss/train --val-key loss/val
    """
    from .logs import diagnose_log

    try:
        result = diagnose_log(path, train_key=train_key, val_key=val_key, plot=plot)
    except UsageError as exc:
        fail(str(exc))
    if not quiet:
        _print_gap(_console(), result)
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")


def _print_gap(console, result: dict) -> None:
    from rich.table import Table

    colour = {"steep-climb": "red", "over-parametrized": "yellow", "underfitting": "yellow",
              "converged": "green"}.get(result["regime"], "blue")
    table = Table(title="labelaudit gap", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("log", _escape(f"{result['path']} ({result['format']}: "
                                 f"{result['train_key']} / {result['val_key']})"))
    table.add_row("regime", f"[bold {colour}]{_escape(result['regime'])}[/]")
    for line in result["evidence"]:
        table.add_row("evidence", _escape(line))
    table.add_row("advice", _escape(result["advice"]))
    if result["plot"]:
        table.add_row("plot", _escape(result["plot"]))
    console.print(table)


@app.command("selftest")
@settings_options("kind", "label_column", "text_column", "id_column", "encoding", "cv", "epochs",
                  "seed", help={"seed": "Random seed for the injection and the scan."})
def selftest_command(
    path: Annotated[Path, typer.Argument(help="Your dataset (image folder or table); it is only "
                                         "read.")],
    *,
    inject: Annotated[float, typer.Option(help="Share of labels to flip in the copy (0-1).")] \
        = 0.1,
    frac_zero_noise_rates: Annotated[float, typer.Option(
        help="0 spreads the errors over all class pairs; e.g. 0.5 concentrates them on a few "
             "(cleanlab's noise generation).")] = 0.0,
    json_out: Annotated[bool, switch("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, switch("--quiet", "-q", help="No progress or summary.")] = False,
    **given,
) -> None:
    """Flip known labels in a temporary copy of PATH, scan it, and say how many were found.

    Exactly round(INJECT x samples) labels are flipped; the output states the realised rate.

    [bold]Examples[/]

      labelaudit selftest data.csv --inject 0.1 --json
      labelaudit selftest datasets/digits-noisy --inject 0.2 --cv 3 --epochs 10
      labelaudit selftest data.csv --frac-zero-noise-rates 0.5
    """
    from .progress import Progress
    from .scan import ScanSettings
    from .selftest import selftest

    settings = ScanSettings(**settings_values(given), audit="always")
    console = _console()
    log = (lambda m: None) if quiet else (lambda m: console.print(_escape(m), soft_wrap=True))
    progress = Progress(quiet=quiet, log=log)
    try:
        with progress.running():
            result = selftest(path, inject=inject, settings=settings,
                              frac_zero_noise_rates=frac_zero_noise_rates, progress=progress,
                              log=log)
    except UsageError as exc:
        fail(str(exc))
    if not quiet:
        _print_selftest(console, result)
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")


def _print_selftest(console, result: dict) -> None:
    from rich.table import Table

    table = Table(title="labelaudit selftest", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("dataset", _escape(f"{result['path']} ({result['kind']}, {result['n_samples']} "
                                     f"samples, {result['n_classes']} classes)"))
    table.add_row("injected", f"{result['n_injected']} label errors (realised rate "
                              f"{result['injected_rate']:.1%}, --inject {result['inject']:g})")
    table.add_row("flagged", f"{result['n_flagged']} samples")
    table.add_row("precision", f"{result['precision']:.3f}")
    table.add_row("recall", f"{result['recall']:.3f}")
    table.add_row("F1", f"{result['f1']:.3f}")
    table.add_row("AUPRC", f"{result['auprc']:.3f} (chance {result['auprc_chance']:.3f})")
    for member, value in result.get("member_auprc", {}).items():
        table.add_row(f"  {_escape(member)}", f"AUPRC {value:.3f}")
    table.add_row("noise rate", f"{result['estimated_noise_rate']:.1%} estimated, "
                                f"{result['injected_rate']:.1%} injected")
    table.add_row("note", _escape(result["note"]))
    table.add_row("time", f"{result['timings']['total']:.1f} s")
    console.print(table)
