import itertools
import math

import pytest

from resnetlab.training.schedule import LrSchedule


def _lrs(name, epochs=10, spe=10, **kw):
    sched = LrSchedule(name=name, **kw, peak_lr=0.1, steps_per_epoch=spe, epochs=epochs)
    return [sched.lr(s) for s in range(epochs * spe)]


def test_warmup_is_linear_then_cosine_decays_to_min():
    lrs = _lrs("cosine", warmup_epochs=2, warmup_start=0.0, min_lr=0.001)
    assert lrs[0] == 0.0 and lrs[10] == pytest.approx(0.05)
    assert lrs[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(lrs[20:]))
    assert lrs[-1] == pytest.approx(0.001, abs=1e-3)


def test_step_schedule_decays_every_n_epochs():
    lrs = _lrs("step", step_epochs=3, gamma=0.5)
    assert lrs[0] == 0.1 and lrs[30] == pytest.approx(0.05) and lrs[60] == pytest.approx(0.025)


def test_onecycle_rises_then_falls():
    lrs = _lrs("onecycle")
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert 25 <= peak <= 35 and lrs[0] == pytest.approx(0.004)
    assert lrs[-1] < 1e-3


def test_none_is_constant():
    assert set(_lrs("none")) == {0.1}


def test_plateau_decays_after_patience_and_resumes_its_state():
    settings = {"name": "plateau", "plateau_patience": 1, "gamma": 0.1}
    sched = LrSchedule(**settings, peak_lr=1.0, steps_per_epoch=1, epochs=10)
    for value in [0.5, 0.6, 0.6, 0.6]:
        sched.observe(value, maximize=True)
    assert sched.lr(5) == pytest.approx(0.1)
    clone = LrSchedule(**settings, peak_lr=1.0, steps_per_epoch=1, epochs=10)
    clone.load_state_dict(sched.state_dict())
    assert clone.lr(5) == sched.lr(5)
    assert all(math.isfinite(x) for x in _lrs("plateau"))
