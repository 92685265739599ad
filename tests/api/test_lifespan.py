"""What the api sets up for the process it serves from, and undoes when it stops."""

import gc
import threading

import pytest
import torch
from sqlalchemy import Engine

from service.settings import Settings
from tests.servers import serve_in_thread


def threads_of_a_new_thread() -> int:
    """torch's intra-op threads as a thread started now sees them (each thread reads the
    process-wide setting when it first uses torch, as the api's worker threads do)."""
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


@pytest.mark.parametrize("settings_overrides", [{"predict_threads": 1}])
def test_serving_freezes_what_startup_made_and_gives_forward_passes_their_threads(
    settings: Settings, engine: Engine
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert gc.get_freeze_count() == 0
        with serve_in_thread(settings):
            # Modules, torch and the app: out of the collector's full passes while serving.
            assert gc.get_freeze_count() > 10_000
            assert threads_of_a_new_thread() == 1
        assert gc.get_freeze_count() == 0
    finally:
        torch.set_num_threads(threads)
