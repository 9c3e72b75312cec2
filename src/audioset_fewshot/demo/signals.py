"""Seeded synthetic audio whose *structure* depends on a class key.

The demo has to tell a trained few-shot learner from an untrained one, so its
classes are not told apart by their average spectrum.  Every class draws a
clip's *spectral shape* (pitch, brightness, noise colour) from one pool that all
classes share; what makes a class is its *structure* (:class:`Structure`):

- the onset pattern: sustained notes, a regular pulse, pairs, triplets or
  Poisson onsets, at a class rate;
- the modulation: amplitude modulation at a class rate, pitch sweeps inside
  each note, and the pitch pattern from note to note (flat, alternating,
  rising, random);
- the harmonic layout: all harmonics, odd ones, octaves, fifths or a bell's
  inharmonic partials;
- the envelope: attack and decay times.

Classes come in families: the class key picks a family (a rhythm and a harmonic
layout) and, within it, the rates, envelope and modulation, so classes of one
family share their layout and differ in timing and modulation.  Each clip adds
within-class variation (tempo and envelope jitter, its own pitch and
brightness), background noise at a random SNR (0-20 dB) and, in about a third of
the clips, a second event of another structure.  Per-clip randomness comes from
``default_rng([seed, STREAM, id_index])``.

The onset jitter and the noise make every source aperiodic, so a clip can be
located in its source by cross-correlation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

GENERATOR_VERSION = 2

_CLASS_STREAM = 101
_ID_STREAM = 102
_DISTRACTOR_STREAM = 103

RHYTHMS = ("sustained", "pulse", "pairs", "triplets", "poisson")
LAYOUTS: dict[str, tuple[float, ...]] = {
    "all": (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0),
    "odd": (1.0, 3.0, 5.0, 7.0, 9.0, 11.0),
    "octaves": (1.0, 2.0, 4.0, 8.0),
    "fifths": (1.0, 1.5, 2.0, 3.0, 4.5, 6.0),
    "bell": (1.0, 2.76, 5.40, 8.93, 13.34),
}
PITCH_PATTERNS = ("flat", "alternate", "rising", "random")
N_FAMILIES = 10


def stable_int(text: str) -> int:
    """A stable 63-bit integer from a string (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class Structure:
    """The class-level parameters of the generator (see module docstring)."""

    family: int
    rhythm: str
    rate_hz: float  # onsets (or groups of onsets) per second
    layout: str
    attack_s: float
    decay_s: float
    am_rate_hz: float  # 0 = none
    am_depth: float
    sweep_st_per_s: float  # pitch glide inside a note, semitones per second
    pitch_pattern: str
    interval_st: float


def _family(index: int) -> tuple[str, str]:
    """Family ``index``: (rhythm, layout); the ten families cover every rhythm twice."""
    layouts = tuple(LAYOUTS)
    return RHYTHMS[index % len(RHYTHMS)], layouts[(index * 3 + index // len(RHYTHMS)) % len(layouts)]


def class_structure(class_key: str) -> Structure:
    """The fixed structure of a class key; the same key always gives the same structure."""
    key = stable_int(class_key)
    rng = np.random.default_rng([GENERATOR_VERSION, _CLASS_STREAM, key])
    family = int(key % N_FAMILIES)
    rhythm, layout = _family(family)
    return _draw_structure(rng, family, rhythm, layout)


def _draw_structure(rng: np.random.Generator, family: int, rhythm: str, layout: str) -> Structure:
    am = rng.random() < 0.5
    sweep = rng.random() < 0.4
    return Structure(
        family=family,
        rhythm=rhythm,
        rate_hz=float(np.exp(rng.uniform(np.log(0.8 if rhythm == "sustained" else 1.5), np.log(1.5 if rhythm == "sustained" else 6.0)))),
        layout=layout,
        attack_s=float(np.exp(rng.uniform(np.log(0.002), np.log(0.08)))),
        decay_s=float(np.exp(rng.uniform(np.log(0.06), np.log(0.8)))),
        am_rate_hz=float(rng.uniform(4.0, 16.0)) if am else 0.0,
        am_depth=float(rng.uniform(0.5, 0.95)) if am else 0.0,
        sweep_st_per_s=float(rng.choice([-1.0, 1.0]) * rng.uniform(6.0, 30.0)) if sweep else 0.0,
        pitch_pattern=str(rng.choice(PITCH_PATTERNS)),
        interval_st=float(rng.uniform(2.0, 9.0)),
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


def _onsets(rng: np.random.Generator, st: Structure, duration_s: float, tempo: float) -> np.ndarray:
    """Onset times (s) of one event of structure ``st``; ``tempo`` scales the class rate."""
    period = 1.0 / (st.rate_hz * tempo)
    start = float(rng.uniform(0.0, period))
    if st.rhythm == "poisson":
        gaps = rng.exponential(period, int(duration_s / period * 3) + 8) + 0.03
        times = start + np.concatenate([[0.0], np.cumsum(gaps)])
    else:
        beats = start + np.arange(int(duration_s / period) + 2) * period
        beats = beats + rng.normal(0.0, 0.02 * period, beats.size)  # a human-ish jitter
        group = {"pairs": 2, "triplets": 3}.get(st.rhythm, 1)
        step = min(0.11, period / (group + 1)) * float(rng.uniform(0.9, 1.1))
        times = (beats[:, None] + np.arange(group)[None, :] * step).ravel()
    return np.sort(times[(times >= 0.0) & (times < duration_s)])


def _event(rng: np.random.Generator, st: Structure, n: int, sr: float) -> np.ndarray:
    """One mono event of structure ``st``, ``n`` samples, peak 1; the clip's own
    pitch, brightness and tempo are drawn here (the shared spectral pool)."""
    duration_s = n / sr
    f0 = float(np.exp(rng.uniform(np.log(110.0), np.log(880.0))))
    slope = float(rng.uniform(-14.0, -3.0))  # dB per partial-ratio octave: brightness
    tempo = float(rng.uniform(0.9, 1.1))
    onsets = _onsets(rng, st, duration_s, tempo)
    if onsets.size == 0:
        onsets = np.zeros(1)
    k = np.arange(onsets.size)
    steps: np.ndarray
    if st.pitch_pattern == "flat":
        steps = np.zeros(onsets.size)
    elif st.pitch_pattern == "alternate":
        steps = (k % 2) * st.interval_st
    elif st.pitch_pattern == "rising":
        steps = (k % 4) * st.interval_st / 2.0
    else:
        steps = rng.uniform(-1.0, 1.0, onsets.size) * st.interval_st
    pitches = f0 * 2.0 ** (steps / 12.0)
    velocity = rng.uniform(0.6, 1.0, onsets.size)
    onset_idx = np.minimum(np.round(onsets * sr).astype(np.int64), n - 1)
    onset_idx[0] = 0 if st.rhythm == "sustained" and onset_idx[0] < sr * 0.2 else onset_idx[0]
    counts = np.diff(np.append(onset_idx, n))
    lead = int(onset_idx[0])
    idx = np.repeat(np.arange(onsets.size), counts)
    t_in = (np.arange(lead, n, dtype=np.float32) - np.repeat(onset_idx, counts).astype(np.float32)) / np.float32(sr)
    glide = np.minimum(t_in.astype(np.float64), 0.5)  # a glide lasts at most 0.5 s
    inst = np.repeat(pitches, counts) * (2.0 ** (st.sweep_st_per_s * glide / 12.0) if st.sweep_st_per_s else 1.0)
    del glide
    phase = np.cumsum(inst * (2.0 * np.pi / sr))
    del inst
    decay = st.decay_s * float(rng.uniform(0.8, 1.25))
    sustain = 0.5 if st.rhythm == "sustained" else 0.0
    env = (1.0 - np.exp(-t_in / np.float32(st.attack_s))) * (sustain + (1.0 - sustain) * np.exp(-t_in / np.float32(decay)))
    env *= velocity[idx].astype(np.float32)
    del t_in
    tonal = np.zeros(n - lead, dtype=np.float32)
    nyquist = sr / 2.0
    top = float(pitches.max()) * (2.0 ** (max(0.0, st.sweep_st_per_s) * 0.5 / 12.0))
    # the phase modulo 4 pi, once, in float32: sin(r * x) is continuous for every r with 2r an integer
    wrapped = np.mod(phase, 4.0 * np.pi).astype(np.float32)
    for ratio in LAYOUTS[st.layout]:
        if top * ratio >= nyquist * 0.9:
            break
        gain = np.float32(10.0 ** (slope * np.log2(ratio) / 20.0))
        if float(2 * ratio).is_integer():
            tonal += gain * np.sin(np.float32(ratio) * wrapped)
        else:
            tonal += gain * np.sin(np.mod(ratio * phase, 2.0 * np.pi).astype(np.float32))
    del phase, wrapped
    tonal *= env
    if st.am_rate_hz:
        t = np.arange(n - lead, dtype=np.float32) / np.float32(sr)
        rate = st.am_rate_hz * float(rng.uniform(0.92, 1.08))
        tonal *= 1.0 - np.float32(st.am_depth * 0.5) * (1.0 + np.sin(np.float32(2 * np.pi * rate) * t))
    out = np.zeros(n, dtype=np.float32)
    out[lead:] = tonal
    peak = float(np.max(np.abs(out))) or 1.0
    return out / np.float32(peak)


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
    """
    st = class_structure(class_key)
    rng = np.random.default_rng([seed, _ID_STREAM, stable_int(ytid)])
    n = max(1, int(round(duration_s * sample_rate_hz)))
    sr = float(sample_rate_hz)
    mono = _event(rng, st, n, sr)
    if rng.random() < 0.35:
        # a second event of another structure, quieter, for a few seconds
        other_rng = np.random.default_rng([seed, _DISTRACTOR_STREAM, stable_int(ytid)])
        fam = int(other_rng.integers(0, N_FAMILIES))
        rhythm, layout = _family(fam)
        other = _draw_structure(other_rng, fam, rhythm, layout)
        length = min(n, int(other_rng.uniform(1.5, 4.0) * sr))
        start = int(other_rng.integers(0, n - length + 1))
        gain = np.float32(10.0 ** (other_rng.uniform(-12.0, -4.0) / 20.0))
        mono[start : start + length] += gain * _event(other_rng, other, length, sr)
    snr_db = float(rng.uniform(0.0, 20.0))
    noise = _coloured_noise(rng, n, float(rng.uniform(-2.0, 0.5)), sample_rate_hz)
    rms_sig = float(np.sqrt(np.mean(mono.astype(np.float64) ** 2))) or 1.0
    rms_noise = float(np.sqrt(np.mean(noise.astype(np.float64) ** 2))) or 1.0
    noise *= np.float32(rms_sig / rms_noise * 10.0 ** (-snr_db / 20.0))
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
