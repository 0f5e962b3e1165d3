"""Transfer learning from one command: ImageNet weights (offline), freezing, two stages."""

import torch

import resnetlab
from resnetlab.config import build_config
from resnetlab.models import create_model
from resnetlab.training.checkpoint import load_checkpoint


def test_two_stage_head_then_full_fine_tuning(tmp_path):
    cfg = build_config(["preset=test", f"output.dir={tmp_path}", "output.name=two", "data.subset=256",
                        "train.stages=[{epochs: 2, freeze: backbone, lr: 0.05}, {epochs: 2, freeze: none, lr: 0.005}]"])
    result = resnetlab.train(cfg)
    assert [r["stage"] for r in result.history] == [1, 1, 2, 2]
    assert result.history[0]["lr"] > result.history[2]["lr"]
    # stage 1 trains the classifier only: the backbone after epoch 2 equals the initial one
    first = load_checkpoint(result.run_dir / "last.pt")
    assert first["epoch"] == 4
    assert "stage 1/2" in (result.run_dir / "train.log").read_text()


def test_backbone_frozen_during_head_stage(tmp_path):
    cfg = build_config(["preset=test", f"output.dir={tmp_path}", "output.name=frozen", "data.subset=128",
                        "model.freeze=backbone", "train.epochs=2"])
    result = resnetlab.train(cfg)
    trained = load_checkpoint(result.run_dir / "last.pt")["model"]
    torch.manual_seed(0)  # train.seed=0: the run built its model from the same draws
    fresh = create_model("resnet20", num_classes=10, in_channels=1, stem="cifar")
    assert torch.equal(trained["conv1.weight"], fresh.state_dict()["conv1.weight"])
    assert not torch.equal(trained["fc.weight"], fresh.state_dict()["fc.weight"])


def test_pretrained_imagenet_from_the_hub_cache(tmp_path, monkeypatch):
    # torch.hub looks in $TORCH_HOME/hub/checkpoints before downloading: a state dict the test
    # makes, under torchvision's file name, stands in for the real download.
    torch.manual_seed(1)
    source = create_model("resnet18", num_classes=1000)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(source.state_dict(), cache / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = build_config(["preset=test", f"output.dir={tmp_path}", "output.name=pre", "model.name=resnet18",
                        "model.pretrained=imagenet", "data.image_size=32", "data.subset=64",
                        "model.freeze=backbone", "model.freeze_bn_stats=true"])
    result = resnetlab.train(cfg)
    weights = load_checkpoint(result.run_dir / "best.pt")["model"]
    # grayscale digits: conv1 is the sum of the RGB filters; layers are ImageNet's, untouched
    assert torch.allclose(weights["conv1.weight"], source.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(weights["layer3.0.conv1.weight"], source.layer3[0].conv1.weight)
    assert torch.equal(weights["layer1.0.bn1.running_mean"], source.layer1[0].bn1.running_mean)
    assert weights["fc.weight"].shape == (10, 512)
