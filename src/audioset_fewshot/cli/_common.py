"""Options and helpers shared by the commands (config loading, root, knobs).

A knob's flag is generated from its config field (:func:`knobs`): one name
(``plan.max_per_class`` <-> ``--max-per-class``), the field's help text, the
true default shown.  A command collects the knobs given on the command line
(:func:`given_knobs`) and calls :func:`resolve_config`: defaults < file < flags.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import click
from click.core import ParameterSource

from audioset_fewshot.config import UNSET, Config, load_config, without_redacted
from audioset_fewshot.layout import DatasetLayout

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    return click.option(
        "-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="YAML config file (see 'audioset-fewshot init')."
    )(func)


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
    func = click.option("--root", type=click.Path(file_okay=False), callback=_root_value, default=None, help="Dataset root (overrides the config's root).")(
        func
    )
    return force_root_option(func)


def hold_root_for_command(root: Path | str) -> None:
    """Check, lock and mark ``root`` for the rest of the running command (released when
    the command ends): nothing is written under a root another command holds, nor under
    a folder that is not ours (unless --force-root)."""
    from audioset_fewshot._root import hold_root

    ctx = click.get_current_context()
    ctx.with_resource(hold_root(root, force=bool(ctx.meta.get(FORCE_ROOT))))


def origin_option(func: F) -> F:
    """The ``download.origins`` knob, one ``--origin`` per origin."""
    return knob(
        "download.origins",
        flag="--origin",
        help="Where clips come from, in order (repeatable; replaces download.origins): youtube, a local path or an fsspec URL.",
    )(func)


def format_option(*choices: str) -> Callable[[F], F]:
    """``--format``: the output format, ``choices[0]`` by default."""
    return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True, help="Output format.")


def echo_json(data: object) -> None:
    """A command's ``--format json`` output: indented, keys sorted."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def resolve_config(config_path: Path | None, overrides: Mapping[str, Any]) -> Config:
    """Load the config with flags applied; a given ``root`` or ``metadata.metadata_dir`` is made a string.

    Without ``-c``, a ``--root`` that holds a saved ``config.yaml`` (every run saves
    its resolved config there) is resumed with that config: ``download --root R``
    continues R's plan instead of starting one from the defaults.  A redacted
    cookies path reads as none (pass ``--cookies`` again).

    A command that writes under the root calls :func:`hold_root_for_command`
    right after, before it writes anything."""
    # a flag is never None when given: None here means "absent"
    clean = {k: (UNSET if v is None else str(v) if isinstance(v, Path) else v) for k, v in overrides.items()}
    if config_path is None and clean.get("root") is not UNSET and clean.get("root"):
        saved = DatasetLayout(Path(clean["root"])).config_file
        if saved.is_file() and not saved.is_symlink():
            config_path = saved
    return without_redacted(load_config(config_path, clean))


def root_config(config_path: Path | None, root: Path | None, knob_values: Mapping[str, Any] | None = None, *, hold: bool = False) -> Config:
    """The config of a command on a root: :func:`resolve_config` with ``root`` and the
    knobs given on the command line (:func:`given_knobs` of ``knob_values``).
    ``hold=True``: the command writes under the root, which is checked, locked and
    marked first (:func:`hold_root_for_command`)."""
    cfg = resolve_config(config_path, {"root": root, **given_knobs(knob_values or {})})
    if hold:
        hold_root_for_command(cfg.root)
    return cfg


# ---------------------------------------------------------------------------------------
# knobs: click options generated from the config fields

_NONE_CHOICE = "none"  # the choice that sets an optional Literal knob to null


def _section_keys(section: str, *, leave_out: tuple[str, ...] = ()) -> tuple[str, ...]:
    cls = typing.get_type_hints(Config)[section]
    return tuple(f"{section}.{f.name}" for f in dataclasses.fields(cls) if f.name not in leave_out)


# The knobs of each section a command exposes (config-only knobs are left out: the
# metadata URLs, the doctor's canary list, the yt-dlp format selector, whose flag
# would clash with the commands' output --format, and the structured yt-dlp knobs:
# extractor arguments, the YoutubeDL passthrough and the sessions).
SELECTION_KEYS = _section_keys("selection")
PLAN_KEYS = _section_keys("plan")
DOWNLOAD_KEYS = _section_keys("download", leave_out=("canary_ids", "format", "origins", "extractor_args", "ytdlp", "sessions"))  # origins: --origin
CLEAN_KEYS = _section_keys("clean")
PACK_KEYS = _section_keys("pack")
FEATURES_KEYS = _section_keys("features")
SPLITS_KEYS = _section_keys("splits")
EPISODES_KEYS = _section_keys("episodes")
EVALUATE_KEYS = _section_keys("evaluate")
CLUSTER_KEYS = _section_keys("cluster")
# cluster knobs whose plain flag would clash with another section's (--workers, --timeout-s)
_CLUSTER_FLAGS = {"cluster.workers": "--cluster-workers", "cluster.timeout_s": "--cluster-timeout-s"}


def cluster_options(func: F) -> F:
    """The ``cluster`` section's knobs (``--engine dask --address tcp://HOST:8786``, ...)."""
    for key in reversed(CLUSTER_KEYS):
        func = knob(key, flag=_CLUSTER_FLAGS.get(key))(func)
    return func


# Click settings a knob's field cannot say (paths that must exist).
_KNOB_CLICK: dict[str, dict[str, Any]] = {
    "metadata.metadata_dir": {"type": click.Path(file_okay=False, exists=True, path_type=Path)},
    "metadata.cache_dir": {"type": click.Path(file_okay=False, path_type=Path)},
    "download.cookies": {"type": click.Path(dir_okay=False, exists=True, path_type=Path)},
    "features.release": {"type": click.Path(exists=True, path_type=Path, resolve_path=True)},
}


class NumberOrWord(click.ParamType):
    """A number, or one of a few words (``--max-per-hour auto``): a knob typed ``float | Literal[...]``."""

    name = "number"

    def __init__(self, words: tuple[str, ...]) -> None:
        self.words = words
        self.name = "|".join(("NUMBER", *words))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (int, float)) or value in self.words:
            return value
        try:
            return float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a number nor {' / '.join(self.words)}", param, ctx)


class KnobOption(click.Option):
    """A flag generated from config fields; ``config_keys`` are the dotted keys it sets."""

    def __init__(self, *args: Any, config_keys: tuple[str, ...], list_item: type | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config_keys = config_keys
        self.list_item = list_item  # a list knob whose values may also be given comma-separated


def config_field(key: str) -> tuple[dataclasses.Field[Any], Any, Any]:
    """``(field, type, default)`` of the dotted config key ``section.name``."""
    section, name = key.split(".")
    cls = typing.get_type_hints(Config)[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise KeyError(f"no config key {key!r}")
    f = fields[name]
    default = f.default_factory() if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING else f.default
    return f, typing.get_type_hints(cls)[name], default


def flag_of(key: str) -> str:
    """The flag of a config key: ``plan.max_per_class`` -> ``--max-per-class``."""
    return "--" + key.split(".")[1].replace("_", "-")


def _help(f: dataclasses.Field[Any]) -> str:
    text = str(f.metadata.get("help", ""))
    return (text[:1].upper() + text[1:] + ".") if text else ""


def knob(key: str, *, flag: str | None = None, also: tuple[str, ...] = (), **click_kw: Any) -> Callable[[F], F]:
    """A click option for config ``key`` (and for the keys in ``also``, which share its
    default): name, type, help and shown default from the field; ``click_kw`` overrides."""
    f, tp, default = config_field(key)
    name = flag or flag_of(key)
    dest = "knob__" + "__".join(k.replace(".", "_") for k in (key, *also))
    opts: dict[str, Any] = {"help": _help(f), "default": default, "show_default": default is not None}
    args = get_args(tp)
    optional = get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args
    inner = next(a for a in args if a is not type(None)) if optional else tp
    words = tuple(str(w) for a in args if get_origin(a) is Literal for w in get_args(a))
    if float in args and words:  # a number or a word: max_per_hour (float | "auto" | None)
        inner = NumberOrWord(words)
    list_item: type | None = None
    decls = [name, dest]
    if inner is bool:
        negative = "--" + "no-" + name[2:]  # --retry-failed / --no-retry-failed
        decls = [f"{name}/{negative}", dest]
    elif get_origin(inner) is Literal:
        choices = [str(c) for c in get_args(inner)] + ([_NONE_CHOICE] if optional else [])
        opts["type"] = click.Choice(choices)
        if default is None:
            opts.update(default=_NONE_CHOICE, show_default=True)
    elif get_origin(inner) is list:
        (item,) = get_args(inner)
        if item is float:  # a short vector: one comma-separated value
            list_item = float
            opts.update(type=str, default=",".join(f"{v:g}" for v in default), metavar="A,B,...")
        else:
            opts.update(multiple=True, default=tuple(default), show_default=bool(default))
            if "choices" in f.metadata:
                list_item = str  # choices hold no comma: accept "a,b" as well as repeated flags
                opts["metavar"] = "|".join(f.metadata["choices"])
    elif isinstance(inner, NumberOrWord):
        opts["type"] = inner
    else:
        opts["type"] = {int: int, float: float, str: str}.get(inner, str)
    opts.update(_KNOB_CLICK.get(key, {}))
    opts.update(click_kw)
    return click.option(*decls, cls=KnobOption, config_keys=(key, *also), list_item=list_item, **opts)


def knobs(*keys: str) -> Callable[[F], F]:
    """:func:`knob` for each of ``keys``, in the order given."""

    def deco(func: F) -> F:
        for key in reversed(keys):
            func = knob(key)(func)
        return func

    return deco


def given_knobs(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{dotted key: value}`` of the knob options given on the command line (or from the
    environment), converted for the config; the ones left at their default are absent."""
    ctx = click.get_current_context()
    params = {p.name: p for p in ctx.command.params if isinstance(p, KnobOption)}
    out: dict[str, Any] = {}
    for dest, value in values.items():
        param = params.get(dest)
        if param is None:
            continue
        source = ctx.get_parameter_source(dest)
        if source in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None):
            continue
        out.update(dict.fromkeys(param.config_keys, _config_value(param, value)))
    return out


def _config_value(param: KnobOption, value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if value == _NONE_CHOICE and isinstance(param.type, click.Choice):
        return None
    if param.list_item is not None:
        items = [value] if isinstance(value, str) else list(value)
        parts = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
        if param.list_item is float:
            try:
                return [float(p) for p in parts]
            except ValueError as err:
                raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers", param=param) from err
        return parts
    if param.multiple:
        return [str(v) for v in value]
    return value
