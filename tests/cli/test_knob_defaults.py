"""Every command's knobs are generated from the config fields: ``--help`` shows the
defaults ``init`` writes into config.yaml, and no knob flag is typed by hand."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from audioset_fewshot.cli import COMMANDS, cli
from audioset_fewshot.cli._common import KnobOption, _config_value, flag_of
from audioset_fewshot.config import Config, render_config

# config-only knobs: no command has a flag for them (their names clash with other flags or need a file)
CONFIG_ONLY = {"metadata.urls", "download.canary_ids", "download.format", "download.extractor_args", "download.ytdlp", "download.sessions"}
# commands that read no config: serve-demo's --seed and --cache-dir are the demo catalogue's and its media cache
NO_CONFIG = {"serve-demo"}


def _commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    out = []
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, name
        out.append((name, cmd))
    return out


def _init_values() -> dict[str, Any]:
    """``{dotted key: value}`` as ``init``'s config.yaml says."""
    data = yaml.safe_load(render_config(Config()))
    return {f"{section}.{k}": v for section, body in data.items() if isinstance(body, dict) for k, v in body.items()}


def _field_flags() -> dict[str, str]:
    hints = typing.get_type_hints(Config)
    out = {}
    for section, tp in hints.items():
        if not dataclasses.is_dataclass(tp):  # the top-level keys (root, demo) are not sections
            continue
        for f in dataclasses.fields(tp):
            key = f"{section}.{f.name}"
            if key not in CONFIG_ONLY:
                out.setdefault(flag_of(key), key)
    return out


def test_every_command_shows_the_defaults_init_writes() -> None:
    init = _init_values()
    checked = 0
    for name, cmd in _commands():
        ctx = click.Context(cmd, info_name=name)
        help_text = cmd.get_help(ctx)
        for param in cmd.params:
            if not isinstance(param, KnobOption):
                continue
            shown = _config_value(param, param.get_default(ctx, call=True))
            for key in param.config_keys:
                assert shown == init[key], f"{name} {param.opts[0]}: default {shown!r}, init's config.yaml says {key}: {init[key]!r}"
                checked += 1
            if init[param.config_keys[0]] not in (None, []):
                # the default is shown in --help, on the lines of this option
                block = help_text.split(param.opts[0], 1)[1].split("\n  -", 1)[0]
                assert "[default:" in " ".join(block.split()), f"{name} {param.opts[0]}: --help shows no default"
    assert checked > 60


def test_no_knob_flag_is_typed_by_hand() -> None:
    """A flag named like a config field is generated from that field."""
    flags = _field_flags()
    typed = []
    for name, cmd in _commands():
        if name in NO_CONFIG:
            continue
        for param in cmd.params:
            if isinstance(param, click.Option) and not isinstance(param, KnobOption):
                typed += [f"{name} {o} (config key {flags[o]})" for o in param.opts if o in flags and o != "--format"]
    assert not typed, "hand-written knob flags: " + "; ".join(typed)


@pytest.mark.parametrize(
    ("argv", "key", "value"),
    [
        (["--ratios", "0.5,0.25,0.25"], "splits.ratios", [0.5, 0.25, 0.25]),
        (["--group", "none"], "splits.group", None),
        (["--sources", "balanced,eval", "--sources", "unbalanced"], "plan.sources", ["balanced", "eval", "unbalanced"]),
        (["--no-all-levels"], "selection.all_levels", False),
        (["--include", "Bird vocalization, bird call, bird song"], "selection.include", ["Bird vocalization, bird call, bird song"]),
    ],
)
def test_given_knobs_reach_the_config_as_config_values(argv: list[str], key: str, value: Any) -> None:
    from audioset_fewshot.cli._common import given_knobs, knobs

    seen: dict[str, Any] = {}

    @click.command()
    @knobs("splits.ratios", "splits.group", "plan.sources", "selection.all_levels", "selection.include", "plan.seed")
    def probe(**knob_values: Any) -> None:
        seen.update(given_knobs(knob_values))

    result = CliRunner().invoke(probe, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == {key: value}  # only what was given; the rest stays with the file and defaults
