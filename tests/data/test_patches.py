"""Patch sampling: grid positions, batched cutting, training crops and evaluation averaging."""

import numpy as np
import pytest
import torch
from torch import nn

from resnetlab.data.augment import BatchAugment
from resnetlab.data.loader import BatchLoader
from resnetlab.data.patches import PatchAugment, PatchAverage, cut_patches, grid_positions


def test_grid_is_as_square_as_the_count_allows_and_spans_the_image():
    tops, lefts = grid_positions(25, image_size=32, size=24)
    assert sorted(set(tops.tolist())) == [0, 2, 4, 6, 8] and sorted(set(lefts.tolist())) == [0, 2, 4, 6, 8]
    assert len({(t, l) for t, l in zip(tops.tolist(), lefts.tolist())}) == 25
    tops, lefts = grid_positions(10, image_size=20, size=10)  # 2 rows x 5 columns
    assert sorted(set(tops.tolist())) == [0, 10] and len(set(lefts.tolist())) == 5
    tops, lefts = grid_positions(1, image_size=32, size=24)  # one patch: the centre
    assert tops.tolist() == [4] and lefts.tolist() == [4]


def test_cut_patches_equals_slicing_each_image():
    images = torch.arange(2 * 3 * 9 * 9, dtype=torch.uint8).reshape(2, 3, 9, 9)
    tops = torch.tensor([[0, 4], [2, 1]])
    lefts = torch.tensor([[3, 0], [4, 2]])
    patches = cut_patches(images, tops, lefts, 5)
    assert patches.shape == (2, 2, 3, 5, 5) and patches.dtype == torch.uint8
    for b in range(2):
        for t in range(2):
            y, x = int(tops[b, t]), int(lefts[b, t])
            assert torch.equal(patches[b, t], images[b, :, y:y + 5, x:x + 5])


def _augment(size: int = 6, seed: int = 0) -> PatchAugment:
    base = BatchAugment(enabled=False, num_classes=0, mean=[0.5], std=[0.25])
    return PatchAugment(base, size=size, seed=seed)


def test_training_patches_are_random_per_image_and_resume_exactly():
    images = torch.randint(0, 256, (16, 1, 12, 12), dtype=torch.uint8)
    images[:] = images[0]  # the same image 16 times: differences come from the crop positions only
    augment = _augment()
    out, targets = augment(images, torch.zeros(16))
    assert out.shape == (16, 1, 6, 6) and out.dtype == torch.float32
    assert len({tuple(p.flatten().tolist()) for p in out}) > 4
    state = augment.state_dict()
    first, _ = augment(images, targets)
    resumed = _augment(seed=123)
    resumed.load_state_dict(state)
    again, _ = resumed(images, targets)
    assert torch.equal(first, again)


class _MeanPixel(nn.Module):
    """Output = mean pixel of each input plus the first side feature."""

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        out = x.mean(dim=(1, 2, 3))[:, None]
        return out if features is None else out + features[:, :1]


def test_evaluation_averages_the_model_over_the_grid_patches():
    images = torch.rand(3, 2, 10, 10)
    wrapped = PatchAverage(_MeanPixel(), size=4, count=4)
    tops, lefts = grid_positions(4, image_size=10, size=4)
    expected = torch.stack([torch.stack([images[b, :, t:t + 4, l:l + 4].mean() for t, l in zip(tops, lefts)]).mean()
                            for b in range(3)])
    assert torch.allclose(wrapped(images)[:, 0], expected)
    features = torch.tensor([[1.0], [2.0], [3.0]])
    assert torch.allclose(wrapped(images, features)[:, 0], expected + features[:, 0])


def test_random_evaluation_patches_repeat_for_every_new_wrapper():
    images = torch.rand(4, 1, 16, 16)
    a = PatchAverage(_MeanPixel(), size=5, count=3, random=True, seed=7)(images)
    b = PatchAverage(_MeanPixel(), size=5, count=3, random=True, seed=7)(images)
    grid = PatchAverage(_MeanPixel(), size=5, count=3)(images)
    assert torch.equal(a, b) and not torch.allclose(a, grid)


def test_loader_repeat_visits_every_sample_that_many_times_an_epoch():
    images = np.zeros((10, 1, 4, 4), dtype=np.uint8)
    loader = BatchLoader(images, np.arange(10), batch_size=8, device=torch.device("cpu"), shuffle=True, repeat=3)
    assert len(loader) == 4  # 30 visits in batches of 8
    seen = torch.cat([batch.targets for batch in loader])
    assert sorted(seen.tolist()) == sorted(list(range(10)) * 3)


@pytest.mark.parametrize("overrides, match", [
    (["patches.size=40"], "larger than data.image_size"),
    (["patches.train_num=4"], "need patches.size"),
])
def test_patch_settings_that_cannot_work_are_refused(tmp_path, overrides, match):
    import resnetlab
    from resnetlab.errors import UserError

    with pytest.raises(UserError, match=match):
        resnetlab.train(overrides=["preset=test", f"output.dir={tmp_path}", "data.image_size=32", *overrides])
