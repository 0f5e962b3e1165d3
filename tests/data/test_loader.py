import numpy as np
import torch

from resnetlab.data.loader import BatchLoader


def _loader(n=23, **kw):
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(2, axis=2)
    targets = np.arange(n, dtype=np.int64)
    return BatchLoader(images, targets, batch_size=5, device=torch.device("cpu"), **kw)


def _epoch(loader):
    return torch.cat([b.targets for b in loader]).tolist()


def test_each_epoch_visits_every_sample_once_in_a_new_order():
    loader = _loader(shuffle=True, seed=1)
    first, second = _epoch(loader), _epoch(loader)
    assert sorted(first) == list(range(23)) and sorted(second) == list(range(23))
    assert first != second
    assert loader.epoch == 2


def test_order_is_a_function_of_seed_and_epoch():
    a, b = _loader(shuffle=True, seed=3), _loader(shuffle=True, seed=3)
    b.set_epoch(1)
    _epoch(a)
    assert _epoch(a) == _epoch(b)


def test_images_follow_their_targets():
    for batch in _loader(shuffle=True):
        assert torch.equal(batch.images[:, 0, 0, 0].long(), batch.targets)


def test_mid_epoch_resume_continues_the_same_batches():
    full = _loader(shuffle=True, seed=5)
    expected = _epoch(full)
    first = _loader(shuffle=True, seed=5)
    it = iter(first)
    seen = [next(it).targets for _ in range(2)]
    state = first.state_dict()
    resumed = _loader(shuffle=True, seed=5)
    resumed.load_state_dict(state)
    rest = [b.targets for b in resumed]
    assert torch.cat(seen + rest).tolist() == expected


def test_training_shards_cover_everything_with_equal_steps():
    shards = [_epoch(_loader(shuffle=True, seed=2, rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    assert {i for shard in shards for i in shard} == set(range(23))


def test_evaluation_shards_count_each_sample_exactly_once():
    shards = [_epoch(_loader(shuffle=False, rank=r, world_size=2)) for r in range(2)]
    merged = [i for shard in shards for i in shard]
    assert sorted(merged) == list(range(23)) and len(merged) == 23


def test_weighted_sampling_balances_classes():
    targets = np.array([0] * 90 + [1] * 10)
    images = np.zeros((100, 1, 1, 1), dtype=np.uint8)
    weights = 1.0 / np.bincount(targets)[targets]
    loader = BatchLoader(images, targets, batch_size=50, device=torch.device("cpu"), shuffle=True,
                         sample_weights=weights)
    drawn = torch.cat([torch.cat([b.targets for b in loader]) for _ in range(20)])
    share = drawn.float().mean().item()
    assert 0.4 < share < 0.6


def test_memmap_source(tmp_path):
    path = tmp_path / "x.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(10, 1, 2, 2))
    array[:] = np.arange(10, dtype=np.uint8)[:, None, None, None]
    array.flush()
    mm = np.load(path, mmap_mode="r")
    loader = BatchLoader(mm, np.arange(10), batch_size=4, device=torch.device("cpu"), shuffle=True)
    for batch in loader:
        assert torch.equal(batch.images[:, 0, 0, 0].long(), batch.targets)


def _all_batches(loader, epochs=2):
    return [(b.images.clone(), b.targets.clone(), b.index.clone(),
             None if b.features is None else b.features.clone()) for _ in range(epochs) for b in loader]


def test_a_resident_split_serves_the_same_batches_as_a_host_one():
    features = np.random.default_rng(0).normal(size=(23, 3)).astype(np.float32)
    kw = {"shuffle": True, "seed": 7, "features": features, "repeat": 2}
    host, resident = _loader(resident=False, **kw), _loader(resident=True, **kw)
    assert resident.resident and not host.resident
    for a, b in zip(_all_batches(host), _all_batches(resident), strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
    # Resumed mid-epoch, it goes on with the same batches too.
    half = _loader(resident=True, **kw)
    half.load_state_dict({"epoch": 1, "position": 4})
    host.load_state_dict({"epoch": 1, "position": 4})
    assert [b.targets.tolist() for b in half] == [b.targets.tolist() for b in host]


def test_a_memory_mapped_split_is_never_resident(tmp_path):
    path = tmp_path / "images.u8"
    array = np.memmap(path, dtype=np.uint8, mode="w+", shape=(4, 1, 2, 2))
    loader = BatchLoader(array, np.zeros(4, dtype=np.int64), batch_size=2, device=torch.device("cpu"), resident=True)
    assert not loader.resident


def test_only_a_gpu_with_room_keeps_the_split(monkeypatch):
    from resnetlab.data.loader import fits_on_device

    gib = 1 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * gib, 16 * gib))
    assert fits_on_device(2 * gib, torch.device("cuda", 0))  # a quarter of the free 8 GiB
    assert not fits_on_device(2 * gib + 1, torch.device("cuda", 0))
    assert fits_on_device(gib, torch.device("mps")) and not fits_on_device(gib + 1, torch.device("mps"))
    assert not fits_on_device(1, torch.device("cpu"))
