"""The backbones: MetaAudio's CRNN layer by layer for 128 mel bins, and the Conv-4."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audioset_fewshot.errors import UsageError
from audioset_fewshot.models import build_backbone, count_parameters, crnn_class, encoder_output_shape


def _shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Output shape of every max-pool of the encoder, in order."""
    out: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: out.append(tuple(o.shape))) for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out


def test_crnn_layers_and_parameters_for_128_mels() -> None:
    model = build_backbone("crnn", 128, 313, seed=0)
    assert type(model).__name__ == "CRNN" and isinstance(model, crnn_class())
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [(1, 64, (3, 3), (1, 1))] + [(64, 64, (3, 3), (1, 1))] * 3
    assert [type(m).__name__ for m in model.encoder] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 4
    assert all(m.kernel_size == 3 and m.stride == 3 for m in model.encoder if isinstance(m, nn.MaxPool2d))
    # 10 s: 128 x 313 -> 42 x 104 -> 14 x 34 -> 4 x 11 -> 1 x 3 (MetaAudio's layout: 64 features per step)
    assert _shapes(model, torch.zeros(2, 1, 128, 313)) == [(2, 64, 42, 104), (2, 64, 14, 34), (2, 64, 4, 11), (2, 64, 1, 3)]
    # 5 s pieces: 157 frames -> one time step
    assert encoder_output_shape(128, 157) == (64, 1, 1)
    rnn = model.rnn
    assert isinstance(rnn, nn.RNN) and rnn.mode == "RNN_TANH"
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.bidirectional) == (64, 64, 1, False)
    head = list(model.head)
    assert isinstance(head[0], nn.Dropout) and head[0].p == 0.3
    assert isinstance(head[1], nn.BatchNorm1d) and head[1].num_features == 64
    assert isinstance(head[2], nn.Linear) and (head[2].in_features, head[2].out_features) == (64, 64)
    assert count_parameters(model.encoder) == 111_936
    assert count_parameters(model.rnn) == 8_320
    assert count_parameters(model.head) == 4_288
    assert count_parameters(model) == 124_544
    with torch.no_grad():
        assert model(torch.randn(3, 1, 128, 313)).shape == (3, 64)
        assert model(torch.randn(3, 1, 128, 157)).shape == (3, 64)


def test_crnn_reads_the_last_step_with_a_skip_connection() -> None:
    model = build_backbone("crnn", 128, 313, seed=1).eval()
    x = torch.randn(2, 1, 128, 313)
    with torch.no_grad():
        z = model.encoder(x)
        seq = z.permute(0, 3, 1, 2).reshape(2, z.shape[3], -1)
        out, _ = model.rnn(seq)
        expected = model.head((out + seq)[:, -1])
        torch.testing.assert_close(model(x), expected)


def test_conv4_and_output_size() -> None:
    model = build_backbone("conv4", 128, 313, seed=0, out_dim=5)
    with torch.no_grad():
        assert model(torch.randn(2, 1, 128, 313)).shape == (2, 5)
    # same convolutions as the CRNN, flattened 64 x 1 x 3 features into the head
    assert count_parameters(model) == 111_936 + 2 * 192 + 192 * 5 + 5


def test_weights_come_from_the_seed_not_torch_global_rng() -> None:
    torch.manual_seed(1)
    a = [p.detach().clone() for p in build_backbone("crnn", 128, 100, seed=4).parameters()]
    torch.manual_seed(2)
    b = [p.detach().clone() for p in build_backbone("crnn", 128, 100, seed=4).parameters()]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = [p.detach().clone() for p in build_backbone("crnn", 128, 100, seed=5).parameters()]
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_too_small_inputs_and_unknown_names_are_refused() -> None:
    with pytest.raises(UsageError, match="too small"):
        build_backbone("crnn", 128, 60, seed=0)
    with pytest.raises(UsageError, match="skip connection"):
        build_backbone("crnn", 64 * 9, 100, seed=0)
    with pytest.raises(UsageError, match="unknown backbone"):
        build_backbone("resnet", 128, 313, seed=0)
