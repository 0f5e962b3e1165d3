import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Tests use tiny tensors: one thread avoids oversubscription when several pytest runs share
    # the cores. Set before every test, since an in-process training run sets train.threads.
    torch.set_num_threads(1)
    yield
