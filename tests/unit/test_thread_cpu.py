"""thread_cpu_seconds: the CPU of each live thread, by name less its number, from /proc."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry

from controller.metrics import RuntimeMetrics, thread_cpu_seconds


def _burn_then_wait(seconds: float, burned: threading.Event, release: threading.Event) -> None:
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass
    burned.set()
    release.wait(30)


def test_busy_threads_show_under_their_name_less_its_number_and_add_up_to_the_process() -> None:
    release = threading.Event()
    burned = [threading.Event(), threading.Event()]
    threads = [
        threading.Thread(target=_burn_then_wait, args=(0.3, burned[0], release), name="burner-7"),
        threading.Thread(target=_burn_then_wait, args=(0.2, burned[1], release), name="burner-12"),
    ]
    for thread in threads:
        thread.start()
    try:
        assert all(event.wait(30) for event in burned)
        registry = CollectorRegistry()
        RuntimeMetrics(registry)
        burner = registry.get_sample_value("thread_cpu_seconds", {"thread": "burner"})
        main = registry.get_sample_value("thread_cpu_seconds", {"thread": "MainThread"})
        native = registry.get_sample_value("thread_cpu_seconds", {"thread": "native"})
        groups = thread_cpu_seconds()
    finally:
        release.set()
        for thread in threads:
            thread.join()
    assert burner is not None and burner >= 0.4  # both (0.5 s), read in clock ticks
    assert main is not None and native is not None
    assert "burner-7" not in groups and groups["burner"] >= burner
    process = time.process_time()
    assert sum(groups.values()) <= process + 0.05
