import pytest
import torch

from resnetlab.models import SqueezeExcite


def test_feature_map_keeps_shape_and_gates_whole_channels():
    torch.manual_seed(0)
    se = SqueezeExcite(64)
    x = torch.rand(2, 64, 5, 7) + 0.1
    out = se(x)
    assert out.shape == x.shape
    ratio = out / x
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-6)  # one gate per channel
    assert ((ratio > 0) & (ratio < 1)).all()


def test_vector_input_keeps_shape():
    torch.manual_seed(0)
    se = SqueezeExcite(2048)
    x = torch.rand(2, 2048) + 0.1
    out = se(x)
    assert out.shape == (2, 2048)
    assert ((out / x > 0) & (out / x < 1)).all()


def test_vector_and_map_gates_agree():
    torch.manual_seed(0)
    se = SqueezeExcite(32)
    vector = torch.randn(2, 32)
    as_map = vector[:, :, None, None].expand(2, 32, 3, 3)
    assert torch.allclose(se(as_map)[:, :, 0, 0], se(vector), atol=1e-6)


@pytest.mark.parametrize(("channels", "reduction", "hidden"), [(2048, 16, 128), (256, 16, 16), (16, 16, 8),
                                                                (4, 16, 4), (64, 4, 16)])
def test_bottleneck_width(channels, reduction, hidden):
    se = SqueezeExcite(channels, reduction=reduction)
    assert se.fc1.out_features == hidden
    assert sum(p.numel() for p in se.parameters()) == 2 * channels * hidden + hidden + channels


def test_rejects_other_ranks():
    with pytest.raises(ValueError, match="expects"):
        SqueezeExcite(8)(torch.randn(2, 8, 3))
