"""Progressive resizing: the side each epoch trains at, and a run that follows it."""

import pytest
import torch

import resnetlab
from resnetlab.config import build_config
from resnetlab.errors import UserError
from resnetlab.training import loop
from resnetlab.training.resolution import progressive_size, resize_batch


def test_the_side_grows_linearly_then_stays_at_full_size():
    sizes = [progressive_size(e, start=20, full=28, epochs=8, until=0.75) for e in range(8)]
    assert sizes == [20, 21, 23, 24, 25, 27, 28, 28]  # ramp over round(0.75 * 8) = 6 epochs
    assert [progressive_size(e, start=16, full=32, epochs=4, until=1.0) for e in range(4)] == [16, 20, 24, 28]
    assert progressive_size(0, start=16, full=32, epochs=4, until=0.0) == 32  # no ramp: full size throughout


def test_resizing_averages_the_pixels_it_replaces():
    board = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(4, 4).reshape(1, 1, 8, 8)
    small = resize_batch(board, 4)
    assert small.shape == (1, 1, 4, 4)
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.05)  # a subsample would be all 1 or 0
    assert resize_batch(board, 8) is board


def test_a_run_trains_its_epochs_at_the_growing_side(tmp_path, monkeypatch):
    seen: list[tuple[int, int]] = []

    def recording(images, size):
        seen.append((len(seen), size))
        return resize_batch(images, size)

    monkeypatch.setattr(loop, "resize_batch", recording)
    cfg = build_config(["preset=test", "train.threads=1", f"output.dir={tmp_path}", "data.subset=64",
                        "data.image_size=16", "train.epochs=4", "train.resize_from=8", "train.resize_until=0.5",
                        "output.plots=false", "output.tensorboard=false"])
    result = resnetlab.train(cfg)
    per_epoch = 64 // 32
    assert [size for _, size in seen] == [8] * per_epoch + [12] * per_epoch + [16] * 2 * per_epoch
    assert len(result.history) == 4


@pytest.mark.parametrize("value", ["2", "16", "40"])
def test_a_start_size_outside_the_range_is_refused(tmp_path, value):
    cfg = build_config(["preset=test", f"output.dir={tmp_path}", "data.image_size=16", f"train.resize_from={value}"])
    with pytest.raises(UserError, match=rf"train.resize_from={value} must lie in \[4, 16\)"):
        resnetlab.train(cfg)
