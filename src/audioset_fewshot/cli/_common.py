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


def root_option(func: F) -> F:
    return click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None, help="Dataset root (overrides the config's root).")(func)


def metadata_dir_option(func: F) -> F:
    return click.option("--metadata-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None, help="Use local copies of the AudioSet segment lists from this folder.")(func)


def resolve_config(config_path: Path | None, overrides: Mapping[str, Any]) -> Config:
    """Load the config with flags applied; a given ``root`` or ``metadata.metadata_dir`` is made a string.

    Without ``-c``, a ``--root`` that holds a saved ``config.yaml`` (every run saves
    its resolved config there) is resumed with that config: ``download --root R``
    continues R's plan instead of starting one from the defaults.  A redacted
    cookies path reads as none (pass ``--cookies`` again)."""
    clean = {k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items()}
    if config_path is None and clean.get("root"):
        saved = DatasetLayout(Path(clean["root"])).config_file
        if saved.is_file():
            config_path = saved
    return without_redacted(load_config(config_path, clean))
