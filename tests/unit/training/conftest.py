from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_intra_op_thread() -> Iterator[None]:
    """These networks are too small to gain from intra-op threads, and on a busy two-core CI
    machine a second thread spinning against other processes makes them several times slower.
    The numbers asserted do not depend on it (the seed experiments give the same bits on 2)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
