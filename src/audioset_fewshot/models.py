"""Backbones for few-shot evaluation: MetaAudio's CRNN and a plain Conv-4.

``crnn`` (MetaAudio's "Hybrid", ``Conv_and_Hybrid.py``)
    Four blocks of ``Conv2d(3x3, pad 1) -> BatchNorm2d -> ReLU -> MaxPool2d(3)``
    with 1 -> 64 -> 64 -> 64 -> 64 channels.  With 128 mel bins the frequency
    axis collapses 128 -> 42 -> 14 -> 4 -> 1, so each remaining time step is a
    64-d vector; a one-layer, unidirectional tanh RNN with 64 units reads that
    sequence, its input is added to its output (skip connection) and the last
    time step is kept.  Head: ``Dropout(0.3) -> BatchNorm1d(64) -> Linear(64 -> out_dim)``.
    Trainable parameters for ``out_dim = 64``: 111,936 (convolutions) + 8,320
    (RNN) + 4,288 (head) = 124,544.
``conv4`` (MetaAudio's "StandardCNN" column)
    The same four convolution blocks, flattened, then the same head.
``sequence`` (for the VGGish release's items: seconds x 128 embeddings)
    Two 1-D convolutions over time (kernel 3, batch norm, ReLU; 128 channels),
    then the mean over time; chosen whatever ``backbone`` says when the items
    are embedding sequences.

Inputs are ``(B, 1, n_mels, frames)`` (``(B, seconds, dim)`` for ``sequence``); the
output is ``(B, out_dim)``.  torch is imported when a network is built.  Weights are
drawn from ``numpy.random.default_rng([seed, INIT_STREAM])``, never from torch's
global generator, so a seed gives the same network wherever it is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from audioset_fewshot.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

BACKBONES = ("crnn", "conv4")
INIT_STREAM = 1001
CHANNELS = 64
POOL = 3
DROPOUT = 0.3


def _pooled(n: int, times: int = 4) -> int:
    for _ in range(times):
        n //= POOL
    return n


def encoder_output_shape(n_mels: int, frames: int) -> tuple[int, int, int]:
    """(channels, mel bins, frames) after the four convolution blocks."""
    return CHANNELS, _pooled(n_mels), _pooled(frames)


def build_backbone(name: str, n_mels: int, frames: int, *, seed: int, out_dim: int = 64) -> nn.Module:
    """A seeded ``crnn`` or ``conv4`` for ``(B, 1, n_mels, frames)`` inputs (in eval mode)."""
    from torch import nn

    if name not in BACKBONES:
        raise UsageError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")
    c, f, t = encoder_output_shape(n_mels, frames)
    if f < 1 or t < 1:
        raise UsageError(f"a {n_mels} x {frames} input is too small for four 3x3 max-pools (needs at least 81 x 81)")

    def block(c_in: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, CHANNELS, 3, padding=1), nn.BatchNorm2d(CHANNELS), nn.ReLU(), nn.MaxPool2d(POOL)]

    encoder = nn.Sequential(*block(1), *block(CHANNELS), *block(CHANNELS), *block(CHANNELS))
    model: nn.Module
    if name == "crnn":
        model = crnn_class()(encoder, c * f, out_dim)
    else:
        model = nn.Sequential(encoder, nn.Flatten(), nn.Dropout(DROPOUT), nn.BatchNorm1d(c * f * t), nn.Linear(c * f * t, out_dim))
    _init(model, seed)
    model.eval()
    return model


def build_sequence_encoder(seconds: int, dim: int, *, seed: int, out_dim: int = 128) -> nn.Module:
    """For ``(B, seconds, dim)`` embedding sequences: two 1-D convolutions over time, mean over time."""
    import torch
    from torch import nn

    class OverTime(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv1d(dim, out_dim, 3, padding=1),
                nn.BatchNorm1d(out_dim),
                nn.ReLU(),
                nn.Conv1d(out_dim, out_dim, 3, padding=1),
                nn.BatchNorm1d(out_dim),
                nn.ReLU(),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.net(x.transpose(1, 2)).mean(dim=2)
            return out

    model = OverTime()
    _init(model, seed)
    model.eval()
    return model


def build_for_items(name: str, item_shape: tuple[int, ...], *, seed: int, out_dim: int = 64) -> nn.Module:
    """``build_backbone`` for ``(1, n_mels, frames)`` items, the sequence encoder for ``(seconds, dim)`` items."""
    if len(item_shape) == 2:
        return build_sequence_encoder(item_shape[0], item_shape[1], seed=seed, out_dim=out_dim)
    return build_backbone(name, item_shape[1], item_shape[2], seed=seed, out_dim=out_dim)


_CRNN: list[type] = []


def crnn_class() -> type[nn.Module]:
    """The CRNN module class (made on first use, so that importing this module needs no torch)."""
    if _CRNN:
        return _CRNN[0]
    import torch
    from torch import nn

    class CRNN(nn.Module):
        """Conv encoder -> RNN over time with a skip connection, last step -> head."""

        def __init__(self, encoder: nn.Module, features: int, out_dim: int) -> None:
            super().__init__()
            if features != CHANNELS:
                raise UsageError(
                    f"the CRNN's skip connection needs {CHANNELS} features per time step after pooling, got {features} "
                    "(MetaAudio's layout assumes 81-242 mel bins, e.g. 128)"
                )
            self.encoder = encoder
            self.rnn = nn.RNN(features, CHANNELS, num_layers=1, batch_first=True, bidirectional=False)
            self.head = nn.Sequential(nn.Dropout(DROPOUT), nn.BatchNorm1d(CHANNELS), nn.Linear(CHANNELS, out_dim))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.encoder(x)  # (B, C, F, T)
            b, c, f, t = z.shape
            seq = z.permute(0, 3, 1, 2).reshape(b, t, c * f)
            out, _ = self.rnn(seq)
            out = out + seq
            head: torch.Tensor = self.head(out[:, -1])
            return head

    _CRNN.append(CRNN)
    return CRNN


def _init(model: nn.Module, seed: int) -> None:
    """He-uniform convolutions, PyTorch's default ranges elsewhere, from numpy's seeded generator."""
    import torch
    from torch import nn

    rng = np.random.default_rng([seed, INIT_STREAM])

    def uniform(t: torch.Tensor, bound: float) -> None:
        t.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=tuple(t.shape)).astype(np.float32)))

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv1d)):
                fan_in = m.in_channels * int(np.prod(m.kernel_size))
                uniform(m.weight, float(np.sqrt(6.0 / fan_in)))
                assert m.bias is not None
                m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, nn.Linear):
                bound = 1.0 / float(np.sqrt(m.in_features))
                uniform(m.weight, bound)
                uniform(m.bias, bound)
            elif isinstance(m, nn.RNN):
                bound = 1.0 / float(np.sqrt(m.hidden_size))
                for p in m.parameters():
                    uniform(p, bound)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


__all__ = ["BACKBONES", "CHANNELS", "build_backbone", "build_for_items", "build_sequence_encoder", "count_parameters", "crnn_class", "encoder_output_shape"]
