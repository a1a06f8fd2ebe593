import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The test models are tiny: a second OpenMP thread buys nothing, and on a loaded 2-core machine
    # spinning OpenMP workers slow small ops by 10-50x. Tests about threads set their own count.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
