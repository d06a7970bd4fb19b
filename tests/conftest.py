import pytest

import nasbench

SPACES = nasbench.shipped_spaces()


@pytest.fixture(scope="session", params=SPACES)
def space(request):
    return nasbench.load_space(request.param)
