"""``WriteMemory`` forgets a key nothing touched for ``idle_seconds``: its base, its written
revision and its status writes, all at once; a key touched meanwhile keeps all three."""

from __future__ import annotations

from controller.clock import FakeClock
from controller.store.memory import WriteMemory


def test_an_idle_key_is_forgotten_whole_and_a_touched_one_kept() -> None:
    clock = FakeClock()
    memory = WriteMemory(idle_seconds=10, clock=clock.now)
    memory.wrote(b"idle", 5, b"old value")
    memory.status_write(b"idle", 4, 5)
    memory.wrote(b"busy", 6, b"value")
    clock.set(8)
    memory.status_write(b"busy", 6, None)  # a status write in flight touches its key
    clock.set(12)  # past the first sweep (every idle_seconds / 2): idle untouched for 12 s
    memory.remember(b"other", 7, b"x")
    assert memory.base(b"idle") is None
    assert not memory.written_at(b"idle", 5)
    assert not memory.is_status_write(b"idle", 4, 5)
    assert memory.base(b"busy") == (6, b"value")
    assert memory.written_at(b"busy", 6)
    assert memory.is_status_write(b"busy", 6, 7)  # in flight: may be the one that comes back


def test_a_key_read_again_stays_and_keeps_its_newest_value() -> None:
    clock = FakeClock()
    memory = WriteMemory(idle_seconds=10, clock=clock.now)
    memory.remember(b"k", 9, b"newer")
    clock.set(6)
    memory.remember(b"k", 3, b"older")  # an older read touches the key, keeps the newer value
    clock.set(14)
    memory.remember(b"other", 1, b"x")  # sweeps: k was last touched 8 s ago
    assert memory.base(b"k") == (9, b"newer")
    assert memory.newer(b"k", 8) == (9, b"newer")
    clock.set(30)
    memory.remember(b"other", 2, b"y")
    assert memory.base(b"k") is None and memory.newer(b"k", 8) is None


def test_reads_alone_sweep() -> None:
    """A converged process may only read (informer gets ask ``newer``): that sweeps too."""
    clock = FakeClock()
    memory = WriteMemory(idle_seconds=10, clock=clock.now)
    memory.wrote(b"k", 3, b"value")
    clock.set(30)
    assert memory.newer(b"other", 0) is None
    assert memory.written_at(b"k", 3) is False
