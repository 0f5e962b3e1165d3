import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Tests use tiny tensors: one thread avoids oversubscription when several pytest runs share
    # the cores. Set before every test, since an in-process training run sets train.threads.
    torch.set_num_threads(1)
    yield


@pytest.fixture
def train_until():
    """``train_until(config, epoch, **train_kwargs)``: a run stopped from outside (as a search prunes
    one) when epoch ``epoch`` is reported, before that epoch's checkpoint is written."""
    import resnetlab

    class Stopped(Exception):
        pass

    def stop_at(epoch):
        def callback(row):
            if row["epoch"] == epoch:
                raise Stopped

        return callback

    def run(config, epoch, **kwargs):
        with pytest.raises(Stopped):
            resnetlab.train(config, callbacks=[stop_at(epoch)], **kwargs)

    return run
