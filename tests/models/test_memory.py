"""Training memory measured from the tensors autograd keeps, and the batch it leaves room for."""

import torch

from resnetlab.models import create_model, freeze
from resnetlab.models.memory import GiB, training_memory

MiB = 2**20


def test_activations_grow_with_the_image_area_and_halve_in_16_bits():
    model = create_model("resnet18", num_classes=10, stem="cifar")
    small = training_memory(model, input_size=(3, 32, 32))
    large = training_memory(model, input_size=(3, 64, 64))
    assert 3.5 < large.per_image_bytes["fp32"] / small.per_image_bytes["fp32"] < 4.5
    assert 0.4 < large.per_image_bytes["bf16/fp16"] / large.per_image_bytes["fp32"] < 0.6
    assert large.state_bytes == small.state_bytes == model_params(model) * 16  # fp32 weights, grads, 2 moments


def model_params(model):
    return sum(p.numel() for p in model.parameters())


def test_resnet50_at_224_is_in_the_known_range_and_batches_shrink_with_the_gpu():
    estimate = training_memory(create_model("resnet50"), input_size=(3, 224, 224))
    assert 60 * MiB < estimate.per_image_bytes["fp32"] < 120 * MiB  # the sum of its saved activations
    assert 0.35 * GiB < estimate.state_bytes < 0.4 * GiB  # 25.6 M parameters x 16 bytes
    batches = [estimate.batch_for("fp32", gib) for gib in (8, 16, 80)]
    assert batches == sorted(batches) and all(b % 8 == 0 for b in batches) and batches[0] > 0
    assert estimate.batch_for("bf16/fp16", 16) > batches[1]
    assert estimate.batch_for("fp32", 1) == 0  # nothing left beside the CUDA reserve


def test_a_frozen_backbone_needs_no_gradients_or_optimizer_state_for_it():
    model = create_model("resnet18", num_classes=10, stem="cifar")
    full = training_memory(model, input_size=(3, 32, 32)).state_bytes
    freeze(model, "backbone")
    assert training_memory(model, input_size=(3, 32, 32)).state_bytes < full / 3


def test_measuring_leaves_the_model_as_it_was():
    model = create_model("resnet20", num_classes=10).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training_memory(model, input_size=(3, 16, 16))
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_summary_prints_it_on_request(capsys):
    from resnetlab.cli.main import main

    assert main(["summary", "resnet20", "--image-size", "32", "--num-classes", "10", "--memory"]) == 0
    out = capsys.readouterr().out
    assert "activations per image, fp32" in out and "batch that fits" in out and "80 GiB:" in out

