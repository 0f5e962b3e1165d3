"""Weight loading, offline: files saved from our own models stand in for downloads."""

import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn

from resnetlab.models import (
    PRETRAINED,
    create_model,
    get_pretrained,
    load_pretrained,
    load_weights_file,
    with_multiscale,
)
from resnetlab.models.weights import WeightsMismatch


def save_hashed(state: dict, folder: Path, stem: str) -> Path:
    """Save like torchvision's files: '<stem>-<first 8 hex of sha256>.pth'."""
    raw = folder / f"{stem}.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    return raw.rename(folder / f"{stem}-{digest[:8]}.pth")


def assert_same_tensors(model: nn.Module, state: dict, *, skip: tuple[str, ...] = ()) -> None:
    own = model.state_dict()
    for key, value in state.items():
        if not key.startswith(skip):
            assert torch.equal(own[key], value), key


@pytest.fixture(scope="module")
def source_state() -> dict:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=1000)
    for module in model.modules():  # non-default statistics, so loading them is visible
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return model.state_dict()


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory, source_state) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    save_hashed(source_state, folder, "resnet18")
    return folder


def hashed_file(folder: Path) -> Path:
    return next(folder.glob("resnet18-*.pth"))


def test_metadata_of_imagenet_weights():
    info = get_pretrained("resnet50")
    assert info.url == "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert (info.num_params, info.resize, info.crop, info.num_classes) == (25_557_032, 256, 224, 1000)
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert {arch for arch, _ in PRETRAINED} == {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}
    for (arch, _), weights in PRETRAINED.items():
        with torch.device("meta"):
            assert sum(p.numel() for p in create_model(arch).parameters()) == weights.num_params
    with pytest.raises(ValueError, match="no pretrained weights for model 'resnet20'"):
        get_pretrained("resnet20")


def test_load_weights_file_same_classes_keeps_everything(weights_dir, source_state):
    model = create_model("resnet18")
    loaded = load_weights_file(model, hashed_file(weights_dir))
    assert_same_tensors(model, source_state)
    assert (loaded.tensors, loaded.classifier) == (len(source_state), "kept")
    assert loaded.summary() == (f"loaded {len(source_state)} tensors from {hashed_file(weights_dir)}; "
                                "classifier kept (1000 classes)")


def test_load_pretrained_from_file_url_checks_the_hash(weights_dir, source_state, tmp_path):
    url = hashed_file(weights_dir).as_uri()
    model = create_model("resnet18")
    load_pretrained(model, arch="resnet18", url=url, cache_dir=tmp_path, progress=False)
    assert_same_tensors(model, source_state)
    assert (tmp_path / hashed_file(weights_dir).name).is_file()  # cached for the next call


def test_load_pretrained_rejects_a_wrong_hash(weights_dir, tmp_path):
    bad = tmp_path / "resnet18-00000000.pth"
    bad.write_bytes(hashed_file(weights_dir).read_bytes())
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="unusable.*invalid hash value"):
        load_pretrained(create_model("resnet18"), arch="resnet18", url=bad.as_uri(), cache_dir=cache,
                        progress=False)
    assert not (cache / bad.name).exists()


def test_load_pretrained_unreachable_url_is_a_user_error(tmp_path):
    missing = (tmp_path / "nowhere-12345678.pth").as_uri()
    with pytest.raises(ValueError, match="could not download weights for 'resnet18'.*pass model.weights=PATH"):
        load_pretrained(create_model("resnet18"), arch="resnet18", url=missing, cache_dir=tmp_path / "c",
                        progress=False)


def test_load_pretrained_checks_the_arch_before_downloading(tmp_path):
    # the URL does not exist: the error must come from the dry run, not the download
    with pytest.raises(ValueError, match="do not fit ResNet.*build the model as 'resnet50'"):
        load_pretrained(create_model("resnet18"), arch="resnet50", url=(tmp_path / "x.pth").as_uri(),
                        cache_dir=tmp_path, progress=False)


def test_new_class_count_remakes_the_classifier(weights_dir, source_state):
    torch.manual_seed(1)
    model = create_model("resnet18", num_classes=10)
    built = {k: v.clone() for k, v in model.fc.state_dict().items()}
    loaded = load_weights_file(model, hashed_file(weights_dir))
    assert loaded.summary() == (f"loaded {len(source_state) - 2} tensors from {hashed_file(weights_dir)}; "
                                "classifier re-made for 10 classes")
    assert model.fc.weight.shape == (10, 512)
    assert all(torch.equal(model.fc.state_dict()[k], v) for k, v in built.items())  # the fresh one stays
    assert_same_tensors(model, source_state, skip=("fc.",))


def test_feature_extractor_drops_the_classifier(weights_dir, source_state):
    model = create_model("resnet18", num_classes=0)
    assert load_weights_file(model, hashed_file(weights_dir)).classifier == "dropped"
    assert isinstance(model.fc, nn.Identity)
    assert_same_tensors(model, source_state, skip=("fc.",))


def test_grayscale_conv1_sums_the_rgb_filters(weights_dir, source_state):
    model = create_model("resnet18", in_channels=1, num_classes=3)
    assert "conv1's RGB filters summed" in load_weights_file(model, hashed_file(weights_dir)).summary()
    rgb = source_state["conv1.weight"]
    assert torch.allclose(model.conv1.weight, rgb.sum(dim=1, keepdim=True))
    assert_same_tensors(model, source_state, skip=("fc.", "conv1."))
    # a gray image through the adapted model equals the gray image as RGB through the source
    source = create_model("resnet18").eval()
    source.load_state_dict(source_state)
    gray = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.eval().forward_features(gray), source.forward_features(gray.expand(-1, 3, -1, -1)),
                              atol=1e-4)


def test_other_channel_counts_repeat_rgb_scaled(weights_dir, source_state):
    model = create_model("resnet18", in_channels=4)
    load_weights_file(model, hashed_file(weights_dir))
    rgb = source_state["conv1.weight"]
    expected = torch.cat([rgb, rgb[:, :1]], dim=1) * 3 / 4
    assert torch.allclose(model.conv1.weight, expected)


def test_resnetlab_checkpoint_and_data_parallel_prefix(tmp_path, source_state):
    checkpoint = tmp_path / "best_model.pth"
    torch.save({"model": source_state, "epoch": 3, "metrics": {"acc": 0.5}}, checkpoint)
    parallel = tmp_path / "parallel.pth"
    torch.save({f"module.{k}": v for k, v in source_state.items()}, parallel)
    for path in (checkpoint, parallel):
        model = create_model("resnet18")
        load_weights_file(model, path)
        assert_same_tensors(model, source_state)


@pytest.mark.parametrize("prefix", ["", "model."])
def test_state_dict_wrapper_as_lightning_saves_it(tmp_path, source_state, prefix):
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": {prefix + k: v for k, v in source_state.items()}, "epoch": 3,
                "optimizer_states": []}, path)
    model = create_model("resnet18")
    load_weights_file(model, path)
    assert_same_tensors(model, source_state)


def test_multiscale_takes_torchvision_weights_into_its_backbone(weights_dir, source_state, tmp_path):
    model = with_multiscale(create_model("resnet18"), project_dim=16, attention=True)
    head_before = model.fc.weight.clone()
    load_weights_file(model, hashed_file(weights_dir))
    assert_same_tensors(model.backbone, source_state, skip=("fc.",))
    assert torch.equal(model.fc.weight, head_before)
    # and its own checkpoints round-trip whole
    torch.save({"model": model.state_dict()}, tmp_path / "ms.pth")
    again = with_multiscale(create_model("resnet18"), project_dim=16, attention=True)
    load_weights_file(again, tmp_path / "ms.pth")
    assert_same_tensors(again, model.state_dict())


def test_block_attention_keeps_fresh_se_layers(weights_dir, source_state):
    model = create_model("resnet18", block_attention=True)
    loaded = load_weights_file(model, hashed_file(weights_dir))
    assert_same_tensors(model, source_state)
    assert (loaded.tensors, loaded.fresh) == (len(source_state), len(model.state_dict()) - len(source_state))
    assert model.layer1[0].se is not None


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="weights file '.*nope.pth' does not exist"):
        load_weights_file(create_model("resnet18"), tmp_path / "nope.pth")


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="holds no state dict"):
        load_weights_file(create_model("resnet18"), path)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch file"):
        load_weights_file(create_model("resnet18"), text)


def test_arch_mismatch(weights_dir):
    with pytest.raises(ValueError, match=r"do not fit ResNet: .*missing \(e.g. layer1.2.conv1.weight\)"):
        load_weights_file(create_model("resnet34"), hashed_file(weights_dir))


def test_cifar_stem_cannot_take_imagenet_conv1(weights_dir):
    with pytest.raises(WeightsMismatch, match="the file's conv1 is 7x7 with 3 input channels, the model's 3x3 "
                                              "with 3; build the model with stem='imagenet'"):
        load_weights_file(create_model("resnet18", stem="cifar"), hashed_file(weights_dir))


def test_first_conv_mismatch_says_what_differs_and_what_fits(tmp_path):
    # a run on grayscale 32px images, reused on RGB with the ImageNet stem
    path = tmp_path / "gray_cifar.pt"
    torch.save({"model": create_model("resnet18", stem="cifar", in_channels=1, num_classes=10).state_dict()}, path)
    with pytest.raises(WeightsMismatch) as caught:
        load_weights_file(create_model("resnet18"), path)
    assert caught.value.first_conv == "the file's conv1 is 3x3 with 1 input channel, the model's 7x7 with 3"
    assert caught.value.needs == {"stem": "cifar", "in_channels": 1}
    assert "ImageNet" not in str(caught.value)
    # the same stem: only the channels differ, and 1 channel does not spread to 3
    with pytest.raises(WeightsMismatch, match="3x3 with 1 input channel, the model's 3x3 with 3; "
                                              "build the model with in_channels=1"):
        load_weights_file(create_model("resnet18", stem="cifar"), path)
    # another architecture as well: no stem or channel setting alone fixes it, the conv1 facts still help
    with pytest.raises(WeightsMismatch, match=r"missing .*\(the file's conv1 is 3x3 .*build the model as") as caught:
        load_weights_file(create_model("resnet50"), path)
    assert caught.value.needs == {}
