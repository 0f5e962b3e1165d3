from resnetlab.training.monitor import Monitor, infer_mode


def test_mode_inferred_from_the_name():
    assert infer_mode("val/loss", "auto") == "min" and infer_mode("val/rmse", "auto") == "min"
    assert infer_mode("val/accuracy", "auto") == "max" and infer_mode("val/mpca", "auto") == "max"


def test_patience_counts_epochs_without_improvement():
    m = Monitor("val/accuracy", patience=2)
    assert m.update(0.5, 1) and not m.update(0.5, 2) and not m.should_stop
    assert not m.update(0.4, 3) and m.should_stop
    assert (m.best, m.best_epoch) == (0.5, 1)


def test_state_round_trip():
    m = Monitor("val/loss", patience=3)
    m.update(1.0, 1)
    m.update(2.0, 2)
    clone = Monitor("val/loss", patience=3)
    clone.load_state_dict(m.state_dict())
    assert clone.state_dict() == m.state_dict() and not clone.update(1.5, 3)
