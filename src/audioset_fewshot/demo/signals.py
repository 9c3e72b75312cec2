"""Seeded synthetic audio whose timbre depends on a class key.

Each class key (a MID, say) gets a fixed *timbre*: fundamental range, number
and slope of harmonics, odd/even balance, amplitude modulation,
note rate and envelope, and the colour and share of a noise component.  Each
YouTube ID adds its own variation (pitch offset, note sequence, levels, stereo
image) from ``default_rng([seed, STREAM, id_index])``, so clips of one class
resemble each other without being copies, and few-shot classification on demo
data is meaningful but not trivial.

The note sequence and the noise make every source aperiodic, so a clip can be
located in its source by cross-correlation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

GENERATOR_VERSION = 1

_CLASS_STREAM = 101
_ID_STREAM = 102


def stable_int(text: str) -> int:
    """A stable 63-bit integer from a string (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class Timbre:
    """The class-level parameters of the generator (see module docstring)."""

    f0_hz: float
    n_harmonics: int
    slope_db_per_octave: float
    odd_even: float  # gain of even harmonics relative to odd ones
    am_rate_hz: float
    am_depth: float
    notes_per_s: float
    attack_s: float
    decay_s: float
    noise_exponent: float  # power spectrum ~ f**noise_exponent (0 white, -1 pink, -2 brown)
    noise_share: float
    pitch_spread_semitones: float


def class_timbre(class_key: str) -> Timbre:
    """The fixed timbre of a class key; the same key always gives the same timbre."""
    rng = np.random.default_rng([GENERATOR_VERSION, _CLASS_STREAM, stable_int(class_key)])
    return Timbre(
        f0_hz=float(np.exp(rng.uniform(np.log(70.0), np.log(900.0)))),
        n_harmonics=int(rng.integers(1, 16)),
        slope_db_per_octave=float(rng.uniform(-18.0, -2.0)),
        odd_even=float(rng.uniform(0.0, 1.0)),
        am_rate_hz=float(rng.uniform(0.5, 14.0)),
        am_depth=float(rng.uniform(0.0, 0.8)),
        notes_per_s=float(np.exp(rng.uniform(np.log(0.7), np.log(8.0)))),
        attack_s=float(np.exp(rng.uniform(np.log(0.002), np.log(0.15)))),
        decay_s=float(np.exp(rng.uniform(np.log(0.05), np.log(1.5)))),
        noise_exponent=float(rng.uniform(-2.0, 1.0)),
        noise_share=float(rng.uniform(0.05, 0.7)),
        pitch_spread_semitones=float(rng.uniform(1.0, 12.0)),
    )


def _fast_len(n: int) -> int:
    """The smallest 2^a * 3^b * 5^c >= n (FFT sizes numpy transforms quickly)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _coloured_noise(rng: np.random.Generator, n: int, exponent: float, sample_rate_hz: int) -> np.ndarray:
    """Noise of length ``n`` whose power spectrum goes as f**exponent, peak-normalised."""
    size = _fast_len(n)
    white = rng.standard_normal(size, dtype=np.float32)
    spec = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate_hz)
    freqs[0] = freqs[1] if size > 1 else 1.0
    shape = np.power(freqs / 1000.0, exponent / 2.0)
    shape[freqs < 30.0] *= 0.1  # no DC rumble
    spec *= shape
    noise = np.fft.irfft(spec, size)[:n].astype(np.float32)
    peak = float(np.max(np.abs(noise))) or 1.0
    noise /= peak
    return noise


def synthesize(
    class_key: str,
    ytid: str,
    *,
    seed: int,
    duration_s: float,
    sample_rate_hz: int,
    channels: int,
) -> np.ndarray:
    """Generate ``(frames, channels)`` float32 audio in [-1, 1] for one source.

    Deterministic in (class_key, ytid, seed, duration, rate, channels, GENERATOR_VERSION).
    About 1 s of CPU per minute of 44.1 kHz stereo.
    """
    timbre = class_timbre(class_key)
    rng = np.random.default_rng([seed, _ID_STREAM, stable_int(ytid)])
    n = max(1, int(round(duration_s * sample_rate_hz)))
    sr = float(sample_rate_hz)

    # note sequence: onsets (Poisson-ish), pitches around this id's base pitch
    base_f0 = timbre.f0_hz * 2.0 ** (rng.uniform(-3.0, 3.0) / 12.0)
    mean_gap = 1.0 / (timbre.notes_per_s * rng.uniform(0.7, 1.4))
    n_notes = int(duration_s / mean_gap * 2) + 4
    gaps = rng.exponential(mean_gap, n_notes) + 0.02
    onsets = np.concatenate([[0.0], np.cumsum(gaps)])
    onsets = onsets[onsets < duration_s]
    pitches = base_f0 * 2.0 ** (rng.uniform(-1.0, 1.0, onsets.size) * timbre.pitch_spread_semitones / 12.0)
    velocities = rng.uniform(0.5, 1.0, onsets.size)
    onset_idx = np.minimum(np.round(onsets * sr).astype(np.int64), n - 1)
    counts = np.diff(np.append(onset_idx, n))
    idx = np.repeat(np.arange(onsets.size), counts)
    t_in = (np.arange(n, dtype=np.float32) - np.repeat(onset_idx, counts).astype(np.float32)) / np.float32(sr)
    # phase in float64 (it grows large), the rest in float32
    phase = np.cumsum(np.repeat(pitches * (2.0 * np.pi / sr), counts))
    x = np.mod(phase, 2.0 * np.pi).astype(np.float32)
    del phase
    env = (1.0 - np.exp(-t_in / np.float32(timbre.attack_s))) * (0.25 + 0.75 * np.exp(-t_in / np.float32(timbre.decay_s)))
    env *= velocities[idx].astype(np.float32)
    del t_in

    # harmonics by the recurrence sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x): no sin() per harmonic
    nyquist = sr / 2.0
    two_cos = 2.0 * np.cos(x)
    s_prev = np.zeros(n, dtype=np.float32)
    s_k = np.sin(x)
    tonal = np.zeros(n, dtype=np.float32)
    top = base_f0 * 2.0 ** (timbre.pitch_spread_semitones / 12.0)
    for k in range(1, timbre.n_harmonics + 1):
        if top * k >= nyquist * 0.95:
            break
        gain = 10.0 ** (timbre.slope_db_per_octave * np.log2(k) / 20.0)
        if k % 2 == 0:
            gain *= timbre.odd_even
        tonal += np.float32(gain) * s_k
        s_prev, s_k = s_k, two_cos * s_k - s_prev
    del two_cos, s_prev, s_k, x
    tonal /= float(np.max(np.abs(tonal))) or 1.0
    t = np.arange(n, dtype=np.float64) / sr
    am = (1.0 - timbre.am_depth * 0.5 * (1.0 + np.sin(2 * np.pi * timbre.am_rate_hz * rng.uniform(0.8, 1.25) * t))).astype(np.float32)
    del t
    mono = np.float32(1.0 - timbre.noise_share) * tonal * env * am
    del tonal, am

    noise = _coloured_noise(rng, n, timbre.noise_exponent, sample_rate_hz)
    noise *= np.float32(timbre.noise_share) * (0.6 + 0.4 * env / (float(np.max(env)) or 1.0))
    level = rng.uniform(0.35, 0.7)
    out = np.empty((n, channels), dtype=np.float32)
    for ch in range(channels):
        pan = np.float32(1.0 + rng.uniform(-0.2, 0.2))
        # a few ms of delay between the channels' noise: a stereo image without a second FFT
        shift = int(rng.integers(0, int(0.008 * sr) + 1)) if ch else 0
        out[:, ch] = pan * mono + (np.roll(noise, shift) if shift else noise)
    peak = float(np.max(np.abs(out))) or 1.0
    out *= np.float32(level / peak)
    return out
