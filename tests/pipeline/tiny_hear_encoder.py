"""A tiny encoder in the HEAR API (load_model / get_scene_embeddings), for the tests.

It wants 8 kHz audio (the pack is 16 kHz, so the evaluation resamples) and returns
per clip the mean and standard deviation over time of a 32-band log power spectrum."""

from __future__ import annotations

import torch


class TinyEncoder(torch.nn.Module):
    sample_rate = 8000

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(256))


def load_model(model_file_path: str = "") -> TinyEncoder:
    return TinyEncoder()


def get_scene_embeddings(audio: torch.Tensor, model: TinyEncoder) -> torch.Tensor:
    spec = torch.stft(audio, 256, 128, window=model.window, return_complex=True).abs().pow(2)  # (B, 129, T)
    bands = torch.log(spec[:, :128].reshape(spec.shape[0], 32, 4, -1).mean(dim=2) + 1e-8)
    return torch.cat([bands.mean(dim=-1), bands.std(dim=-1)], dim=1)
