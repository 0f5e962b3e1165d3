import pytest
import torch

from resnetlab.models import create_model, freeze, summarize, with_multiscale


def test_resnet50_at_224_matches_published_size_and_cost():
    summary = summarize(create_model("resnet50"), input_size=(3, 224, 224))
    text = summary.format()
    assert "Total params: 25,557,032" in text
    assert "MACs: 4.09 G" in text
    assert summary.flops == 2 * summary.macs
    rows = {row.name: row for row in summary.rows}
    assert rows["conv1"].output_shape == (1, 64, 112, 112)
    assert rows["layer4.2"].output_shape == (1, 2048, 7, 7)
    assert rows["fc"].output_shape == (1, 1000)


def test_rows_are_stem_blocks_pool_and_classifier_in_call_order():
    model = create_model("resnet18", num_classes=10, stem="cifar")
    model.train()
    summary = summarize(model, input_size=(3, 32, 32), batch_size=2)
    names = [row.name for row in summary.rows]
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1.0", "layer1.1", "layer2.0", "layer2.1",
                     "layer3.0", "layer3.1", "layer4.0", "layer4.1", "avgpool", "fc"]
    assert [row.kind for row in summary.rows][:5] == ["Conv2d", "BatchNorm2d", "ReLU", "Identity", "BasicBlock"]
    assert summary.rows[-1].output_shape == (2, 10)
    assert sum(row.params for row in summary.rows) == summary.total_params
    assert model.training  # mode restored
    assert "(MACs and FLOPs are for the batch of 2)" in summary.format()


def test_trainable_counts_follow_freezing():
    model = create_model("resnet20")
    freeze(model, "backbone")
    summary = summarize(model, input_size=(3, 32, 32))
    assert summary.trainable_params == 64 * 10 + 10
    assert f"Non-trainable params: {summary.total_params - 650:,}" in summary.format()


def test_wrapped_models_are_opened():
    model = with_multiscale(create_model("resnet18"), project_dim=8, attention=True)
    names = [row.name for row in summarize(model, input_size=(3, 32, 32)).rows]
    assert names[:2] == ["backbone.conv1", "backbone.bn1"]
    assert "backbone.layer4.1" in names and "backbone.avgpool" not in names  # pooled per stage instead
    assert names[-1] == "fc" and "se" in names and "proj.0.0" in names


@pytest.mark.parametrize("size", [(224, 224), (3, 0, 4), "3x224x224"])
def test_bad_input_size(size):
    with pytest.raises(ValueError, match="input_size"):
        summarize(create_model("resnet18"), input_size=size)


def test_macs_scale_with_resolution():
    model = create_model("resnet18")
    small = summarize(model, input_size=(3, 32, 32)).macs
    large = summarize(model, input_size=(3, 64, 64)).macs
    fc = 512 * 1000
    assert (large - fc) == pytest.approx(4 * (small - fc), rel=0.02)
    assert torch.is_grad_enabled()
