"""The ``audioset-fewshot`` command: a thin click layer over the library.

Each command lives in its own module ``cli/<name>.py`` exposing a click command
named ``command``; the group imports a module only when its command runs, so
``--help`` and light commands never import torch or yt-dlp.

Exit codes: 0 ok, 1 our error, 2 usage / config error, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM, handled like Ctrl-C: what was committed is kept).
Without ``--debug`` an error is one actionable line; with it, the traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from audioset_fewshot import __version__
from audioset_fewshot._signals import sigterm_as_interrupt
from audioset_fewshot.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, AudiosetFewshotError, Terminated

# name -> (module, one-line help).  Order is the data flow; the group lists them so.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("audioset_fewshot.cli.init_cmd", "Write a commented default config.yaml."),
    "classes": ("audioset_fewshot.cli.classes", "Choose AudioSet classes and explain why each is in or out."),
    "serve-demo": ("audioset_fewshot.cli.serve_demo", "Run the offline YouTube-like media server on 127.0.0.1."),
    "plan": ("audioset_fewshot.cli.plan", "Write the seeded sampling plan."),
    "doctor": ("audioset_fewshot.cli.doctor", "Check yt-dlp, JS runtime, ffmpeg, cookies and disk before a download."),
    "download": ("audioset_fewshot.cli.download", "Download the planned segments (resumable)."),
    "origins": ("audioset_fewshot.cli.origins", "Check local copies of AudioSet (download.origins)."),
    "manifest": ("audioset_fewshot.cli.manifest", "Write the manifest (clips.csv, lock.json, ...) from the ledger."),
    "recover": ("audioset_fewshot.cli.recover", "Rebuild a damaged or missing ledger from the clips on disk, losing none."),
    "status": ("audioset_fewshot.cli.status", "Per-class obtained / target / failures."),
    "verify": ("audioset_fewshot.cli.verify", "Re-hash every clip against the manifest."),
    "diff": ("audioset_fewshot.cli.diff", "Compare two manifests or roots."),
    "rebuild": ("audioset_fewshot.cli.rebuild", "Download exactly the clips a manifest lists."),
    "merge": ("audioset_fewshot.cli.merge", "Merge shard roots into one root and manifest."),
    "export": ("audioset_fewshot.cli.export", "Export the Creative Commons clips with attribution."),
    "process": ("audioset_fewshot.cli.process", "Clean, pack and compute log-mel features."),
    "cluster": ("audioset_fewshot.cli.cluster", "Check the Dask cluster (doctor) or print a worker job's script (script)."),
    "splits": ("audioset_fewshot.cli.splits", "Class-disjoint meta-splits with a leakage policy."),
    "episodes": ("audioset_fewshot.cli.episodes", "Write fixed evaluation episodes (JSONL)."),
    "evaluate": ("audioset_fewshot.cli.evaluate", "Train and evaluate a baseline meta-learner."),
    "run": ("audioset_fewshot.cli.run", "Run the whole pipeline (--demo: offline, end to end)."),
    "report": ("audioset_fewshot.cli.report", "Write the HTML report of a dataset root."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, short = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise

            @click.command(name=cmd_name, help=short + " (not available in this build)")
            def _missing() -> None:
                raise click.UsageError(f"command '{cmd_name}' is not available in this build")

            return _missing
        cmd: click.Command = module.command
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="audioset-fewshot")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Show info logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """audioset-fewshot: AudioSet as a clean, reproducible few-shot dataset."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    before = list(logging.getLogger().handlers)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        if handler in before:  # a host's handlers (a test runner's) are theirs
            continue
        # Dask sets its own loggers to INFO: their lines pass the root's level, not the handler's
        handler.setLevel(level)
        if not debug:
            handler.addFilter(_quiet_dask)


def _quiet_dask(record: logging.LogRecord) -> bool:
    """Dask's own lines (scheduler, nanny and worker comms) below WARNING only with --debug."""
    return record.levelno >= logging.WARNING or not record.name.startswith(("distributed", "dask"))


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the group and maps every outcome to an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # SLURM / Dask preemption: the same clean stop as Ctrl-C; as the program (no argv), a
        # SIGTERM that lands while the process exits afterwards is ignored
        with sigterm_as_interrupt(ignore_after=argv is None):
            rc = cli.main(args=args, prog_name="audioset-fewshot", standalone_mode=False)
    except (click.exceptions.Abort, Terminated) as err:
        if isinstance(err, Terminated) or isinstance(err.__cause__, Terminated):
            click.echo("terminated (SIGTERM): what was committed is kept; run the same command again to resume", err=True)
            sys.exit(EXIT_TERMINATED)
        # click turns Ctrl-C (KeyboardInterrupt) into Abort: say that nothing committed is lost
        if isinstance(err.__cause__, KeyboardInterrupt):
            click.echo("interrupted: what was committed is kept; run the same command again to resume", err=True)
        else:
            click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("interrupted: what was committed is kept; run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(EXIT_USAGE if isinstance(err, click.UsageError) else err.exit_code)
    except AudiosetFewshotError as err:
        if debug:
            raise
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except OSError as err:
        from audioset_fewshot._io import storage_error

        mapped = storage_error(err, err.filename or "a file")
        if debug or mapped is err:
            if debug:
                raise
            click.echo(f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)", err=True)
            sys.exit(EXIT_ERROR)
        click.echo(f"error: {mapped}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as err:  # a bug: say so in one line, the traceback with --debug
        if debug:
            raise
        click.echo(f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(rc if isinstance(rc, int) else 0)


def echo(message: Any = "", **kwargs: Any) -> None:
    """Commands print results through click (the library never prints)."""
    click.echo(message, **kwargs)
