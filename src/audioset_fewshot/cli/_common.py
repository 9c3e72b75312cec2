"""Options and helpers shared by the commands (config loading, root, metadata dir).

A command builds a dict of the flags it was given (dotted config keys, None
when absent) and calls :func:`resolve_config`: defaults < file < flags.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from audioset_fewshot.config import Config, load_config, without_redacted
from audioset_fewshot.layout import DatasetLayout

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    return click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="YAML config file (see 'audioset-fewshot init').")(func)


FORCE_ROOT = "audioset_fewshot.force_root"  # ctx.meta key set by --force-root


def _root_value(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    if value is None:
        return None
    if not value.strip():  # Path("") would silently mean the current folder
        raise click.BadParameter("the empty string is not a dataset root; give a folder, e.g. --root ./audioset-data", ctx=ctx, param=param)
    return Path(value)


def _force_root(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[FORCE_ROOT] = True
    return value


def force_root_option(func: F) -> F:
    return click.option(
        "--force-root", is_flag=True, expose_value=False, callback=_force_root,
        help="Use a non-empty folder that is not an audioset-fewshot root (no marker file) as the root anyway.",
    )(func)  # fmt: skip


def root_option(func: F) -> F:
    func = click.option("--root", type=click.Path(file_okay=False), callback=_root_value, default=None, help="Dataset root (overrides the config's root).")(func)
    return force_root_option(func)


def hold_root_for_command(root: Path | str) -> None:
    """Check, lock and mark ``root`` for the rest of the running command (released when
    the command ends): nothing is written under a root another command holds, nor under
    a folder that is not ours (unless --force-root)."""
    from audioset_fewshot._root import hold_root

    ctx = click.get_current_context()
    ctx.with_resource(hold_root(root, force=bool(ctx.meta.get(FORCE_ROOT))))


def metadata_dir_option(func: F) -> F:
    return click.option("--metadata-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None, help="Use local copies of the AudioSet segment lists from this folder.")(func)


def resolve_config(config_path: Path | None, overrides: Mapping[str, Any]) -> Config:
    """Load the config with flags applied; a given ``root`` or ``metadata.metadata_dir`` is made a string.

    Without ``-c``, a ``--root`` that holds a saved ``config.yaml`` (every run saves
    its resolved config there) is resumed with that config: ``download --root R``
    continues R's plan instead of starting one from the defaults.  A redacted
    cookies path reads as none (pass ``--cookies`` again).

    A command that writes under the root calls :func:`hold_root_for_command`
    right after, before it writes anything."""
    clean = {k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items()}
    if config_path is None and clean.get("root"):
        saved = DatasetLayout(Path(clean["root"])).config_file
        if saved.is_file() and not saved.is_symlink():
            config_path = saved
    return without_redacted(load_config(config_path, clean))
