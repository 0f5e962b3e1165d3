import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Tests use tiny tensors: one thread avoids oversubscription when several pytest runs share the cores.
    torch.set_num_threads(1)
    yield
