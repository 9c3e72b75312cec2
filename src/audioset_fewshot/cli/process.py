"""``audioset-fewshot process``: clean, pack and compute log-mel features.

Stages run in order (``--stage all``) or one at a time; each is a no-op when its
inputs and parameters are unchanged.  ``--workers`` sets the decode processes of
clean and pack.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, hold_root_for_command, resolve_config, root_option

STAGES = ("clean", "pack", "features", "all")


@click.command(name="process")
@config_option
@root_option
@click.option("--stage", type=click.Choice(STAGES), default="all", show_default=True, help="Which stage to run.")
@click.option("--layout", type=click.Choice(["packed", "per-file"]), default=None, help="per-file also writes one .npy per clip in class folders.")
@click.option("--workers", type=int, default=None, help="Decode processes for clean and pack (default 2).")
@click.option("--min-duration-s", type=float, default=None, help="Reject clips shorter than this.")
@click.option("--silence-dbfs", type=float, default=None, help="Reject clips whose RMS is below this (dBFS).")
@click.option("--max-clipped-fraction", type=float, default=None, help="Reject clips with more samples at full scale than this fraction.")
@click.option("--policy", type=click.Choice(["drop", "keep"]), default=None, help="Drop rejected clips from the pack, or keep them (verdicts are always recorded).")
@click.option("--sample-rate-hz", type=int, default=None, help="Sample rate of the packed array.")
@click.option("--dtype", type=click.Choice(["int16", "float32"]), default=None, help="Sample type of the packed array.")
@click.option("--length-s", type=float, default=None, help="Fixed length of every packed row (s).")
@click.option("--length-policy", type=click.Choice(["pad_zero", "pad_repeat", "drop"]), default=None, help="What to do with shorter clips.")
@click.option("--n-fft", type=int, default=None, help="FFT size.")
@click.option("--hop-length", type=int, default=None, help="Hop between frames (samples).")
@click.option("--n-mels", type=int, default=None, help="Mel bins (Slaney scale and norm).")
@click.option("--f-min", type=float, default=None, help="Lowest mel frequency (Hz).")
@click.option("--f-max", type=float, default=None, help="Highest mel frequency (Hz); default Nyquist.")
@click.option("--power", type=float, default=None, help="Exponent of the magnitude spectrogram.")
@click.option("--amin", type=float, default=None, help="Floor of the power before dB.")
@click.option("--top-db", type=float, default=None, help="Floor each clip at its max minus this many dB.")
@click.option("--force", is_flag=True, help="Redo the chosen stages even when up to date.")
def command(config_path: Path | None, root: Path | None, stage: str, layout: str | None, workers: int | None,
            min_duration_s: float | None, silence_dbfs: float | None, max_clipped_fraction: float | None, policy: str | None,
            sample_rate_hz: int | None, dtype: str | None, length_s: float | None, length_policy: str | None,
            n_fft: int | None, hop_length: int | None, n_mels: int | None, f_min: float | None, f_max: float | None,
            power: float | None, amin: float | None, top_db: float | None, force: bool) -> None:  # fmt: skip
    """Clean the downloaded clips, pack them into one array and compute log-mel features."""
    from audioset_fewshot.process import clean, features, pack

    cfg = resolve_config(config_path, {
        "root": root, "clean.min_duration_s": min_duration_s, "clean.silence_dbfs": silence_dbfs,
        "clean.max_clipped_fraction": max_clipped_fraction, "clean.policy": policy,
        "pack.sample_rate_hz": sample_rate_hz, "pack.dtype": dtype, "pack.length_s": length_s,
        "pack.length_policy": length_policy, "pack.workers": workers,
        "features.n_fft": n_fft, "features.hop_length": hop_length, "features.n_mels": n_mels, "features.f_min": f_min,
        "features.f_max": f_max, "features.power": power, "features.amin": amin, "features.top_db": top_db,
        "features.layout": layout,
    })  # fmt: skip
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    root_dir = Path(cfg.root)
    run = {"clean", "pack", "features"} if stage == "all" else {stage}
    if "clean" in run:
        t0 = time.perf_counter()
        c = cfg.clean
        rep = clean(root_dir, min_duration_s=c.min_duration_s, silence_dbfs=c.silence_dbfs,
                    max_clipped_fraction=c.max_clipped_fraction, policy=c.policy, workers=cfg.pack.workers, force=force)
        reasons = ", ".join(f"{k} {v}" for k, v in rep.by_reason.items())
        click.echo(f"clean: {len(rep.verdicts)} clips, {rep.kept} kept, {rep.rejected} rejected, {rep.dropped} dropped "
                   f"(policy {c.policy}) [{reasons}] in {time.perf_counter() - t0:.1f} s -> {rep.path}")
    if "pack" in run:
        t0 = time.perf_counter()
        p = cfg.pack
        pk = pack(root_dir, sample_rate_hz=p.sample_rate_hz, dtype=p.dtype, length_s=p.length_s,
                  length_policy=p.length_policy, workers=p.workers, force=force)
        actions = ", ".join(f"{k} {v}" for k, v in pk.length_actions.items())
        dropped = f", {len(pk.dropped_by_length)} dropped as too short" if pk.dropped_by_length else ""
        click.echo(f"pack: {pk.rows} rows x {pk.samples} samples {pk.dtype} at {pk.sample_rate_hz} Hz [{actions}]{dropped} "
                   f"in {time.perf_counter() - t0:.1f} s -> {pk.path}")
    if "features" in run:
        t0 = time.perf_counter()
        f = cfg.features
        fr = features(root_dir, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels, f_min=f.f_min, f_max=f.f_max,
                      power=f.power, amin=f.amin, top_db=f.top_db, layout=f.layout, force=force)
        extra = f"; per-file copies in {fr.per_file_dir}" if fr.per_file_dir else ""
        click.echo(f"features: {fr.rows} x {fr.n_mels} x {fr.frames} log-mel (key {fr.key}) "
                   f"in {time.perf_counter() - t0:.1f} s -> {fr.path}{extra}")
