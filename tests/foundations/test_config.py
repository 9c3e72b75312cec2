from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from audioset_fewshot.config import UNSET, Config, config_from_dict, load_config, parse_shard, parse_size, render_config
from audioset_fewshot.errors import ConfigError


def test_default_config_round_trips_through_yaml() -> None:
    assert config_from_dict(yaml.safe_load(render_config())) == Config()


def test_unknown_key_suggests_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'plan.max_per_clas'.*'plan.max_per_class'"):
        config_from_dict({"plan": {"max_per_clas": 3}})


def test_bad_value_names_key_path_and_value() -> None:
    with pytest.raises(ConfigError, match=r"'download.jobs'.*'many'"):
        config_from_dict({"download": {"jobs": "many"}})
    with pytest.raises(ConfigError, match=r"'normalize.mode'.*Did you mean 'global'"):
        config_from_dict({"normalize": {"mode": "globl"}})
    with pytest.raises(ConfigError, match=r"'download.jobs': 0 is below the minimum 1"):
        config_from_dict({"download": {"jobs": 0}})


def test_precedence_defaults_file_flags(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("plan:\n  seed: 7\n  max_per_class: 9\n")
    cfg = load_config(cfg_file, {"plan.seed": 11, "download.jobs": UNSET, "download.max_per_hour": None})
    assert cfg.plan.seed == 11  # flag beats file
    assert cfg.plan.max_per_class == 9  # file beats default
    assert cfg.download.jobs == Config().download.jobs  # UNSET = flag not given
    assert cfg.download.max_per_hour is None  # None is YAML's null: no hourly cap
    assert repr(UNSET) == "UNSET" and not UNSET


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("plan:\n  seed: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: malformed YAML"):
        load_config(bad)


def test_sizes_and_shards() -> None:
    assert parse_size("2GB") == 2_000_000_000
    assert parse_size("1.5 MiB") == int(1.5 * 2**20)
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(ConfigError):
        parse_shard("4/4")
    with pytest.raises(ConfigError):
        parse_size("lots")


def test_init_writes_commented_default_and_refuses_overwrite(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "audioset_fewshot", "init", str(tmp_path)]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    text = (tmp_path / "config.yaml").read_text()
    assert "# clips to obtain per class" in text
    # the defaults, with the relative root read from the file's folder
    assert load_config(tmp_path / "config.yaml") == dataclasses.replace(Config(), root=str(tmp_path / Config().root))
    second = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert second.returncode == 2
    assert "--force" in second.stderr


def test_root_without_config_flag_resumes_its_saved_config(tmp_path: Path) -> None:
    from audioset_fewshot.cli._common import resolve_config
    from audioset_fewshot.config import REDACTED, write_config
    from audioset_fewshot.config import replace as cfg_replace

    root = tmp_path / "root"
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    saved = cfg_replace(Config(), **{"root": str(root), "plan.seed": 7, "plan.max_per_class": 9, "download.cookies": str(cookies)})
    write_config(root / "config.yaml", saved)
    text = (root / "config.yaml").read_text()
    assert str(cookies) not in text and REDACTED in text  # the path of the secret is not saved either

    cfg = resolve_config(None, {"root": root, "plan.seed": None})
    assert (cfg.plan.seed, cfg.plan.max_per_class) == (7, 9)  # the root's plan, not the defaults
    assert cfg.download.cookies is None  # the marker reads as "no cookies": pass --cookies again
    assert resolve_config(None, {"root": root, "plan.seed": 3}).plan.seed == 3  # flags still win
    assert resolve_config(None, {"root": tmp_path / "new"}).plan.seed == Config().plan.seed
