import pytest
import torch

import nasbench

SPACES = nasbench.shipped_spaces()

# Tests run tiny models: one intra-op thread is as fast on a quiet machine and far steadier on a busy
# 2-core one (oversubscribed threads there were 5-10x slower), and it keeps float results reproducible.
torch.set_num_threads(1)


@pytest.fixture(scope="session", params=SPACES)
def space(request):
    return nasbench.load_space(request.param)
