"""The worker pool of parallel enumeration, stopped at once on Ctrl-C or an error."""

from __future__ import annotations

import time

from maso.regions import _parallel


def test_stopping_a_busy_pool_leaves_no_manager_thread_behind():
    """After `_stop_pool` the pool's manager thread has ended and closed its wake-up pipe. Left running, Python's
    exit hook (3.11) wrote to that pipe while the thread closed it: ``OSError: [Errno 9] Bad file descriptor``
    and a traceback after ``maso regions``' one-line Ctrl-C message (seen once in CI). Without the wait the
    thread was still alive in 4 of 5 tries, so three tries catch a regression with probability above 99%."""
    for _ in range(3):
        pool = _parallel._pool(2)
        with _parallel._spawning(pool):
            futures = [pool.submit(time.sleep, 60) for _ in range(4)]
        deadline = time.monotonic() + 60
        while not any(f.running() for f in futures) and time.monotonic() < deadline:
            time.sleep(0.05)
        manager = pool._executor_manager_thread
        wakeup = pool._executor_manager_thread_wakeup
        started = time.monotonic()
        _parallel._stop_pool(pool)
        assert time.monotonic() - started < 10, "stopping waited for the running tasks"
        assert manager is not None and not manager.is_alive()
        assert wakeup._closed  # Python's exit hook skips a closed wake-up
        assert all(f.cancelled() or f.done() for f in futures)
