"""Live sessions by id and by device; a second connection of a device replaces the first."""

from __future__ import annotations

from dataclasses import dataclass

from xiaozhi_hub.transport.registry import SessionRegistry


@dataclass
class Entry:
    id: str
    device_id: str


def test_add_get_by_device_and_remove():
    reg = SessionRegistry()
    a = Entry("s1", "02:aa:00:00:00:01")
    assert reg.add(a) is None                                    # type: ignore[arg-type]
    assert reg.get("s1") is a and reg.by_device("02:AA:00:00:00:01") is a   # device ids ignore case
    assert list(reg) == [a] and len(reg) == 1
    reg.remove(a)                                                # type: ignore[arg-type]
    assert reg.get("s1") is None and reg.by_device(a.device_id) is None and len(reg) == 0


def test_a_new_connection_of_the_same_device_replaces_the_old_one():
    reg = SessionRegistry()
    old, new = Entry("s1", "02:aa:00:00:00:01"), Entry("s2", "02:aa:00:00:00:01")
    reg.add(old)                                                 # type: ignore[arg-type]
    assert reg.add(new) is old                                   # type: ignore[arg-type]
    assert reg.by_device(new.device_id) is new and reg.get("s1") is None and len(reg) == 1
    reg.remove(old)                                              # type: ignore[arg-type]  (the old socket ends later)
    assert reg.by_device(new.device_id) is new                   # ...and does not unregister the new one
