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


@pytest.fixture(scope="session")
def tiny16_path(tmp_path_factory):
    """A copy of the shipped ``tiny`` space at resolutions 12 and 16: its supernet trains a step in tens of
    milliseconds on one thread (the training tests' space)."""
    from importlib import resources

    text = (resources.files("nasbench.search_spaces") / "tiny.yaml").read_text()
    text = text.replace("resolution: [16, 24, 32]", "resolution: [12, 16]")
    text = text.replace(
        "tiny_ref: {width: 1.0, depth: 1.0, resolution: 32}", "tiny_ref: {width: 1.0, depth: 1.0, resolution: 16}"
    )
    path = tmp_path_factory.mktemp("space") / "tiny16.yaml"
    path.write_text(text)
    return path
