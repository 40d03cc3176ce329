"""What sys_enter and sys_exit are told to do per syscall, for a policy set's kernel bits."""

from pytracee.ebpf.tracer import syscall_interest
from pytracee.events.definitions import BY_NAME

OPEN_CALLS = {BY_NAME[n].id for n in ("open", "openat", "openat2", "creat")}


def ids(*names: str) -> dict[int, int]:
    return {BY_NAME[n].id: 1 for n in names}


def test_security_file_open_alone_saves_nothing_at_sys_enter() -> None:
    enter, exits, raw_exit = syscall_interest(ids("security_file_open"))
    assert OPEN_CALLS <= exits
    assert not OPEN_CALLS & enter
    assert raw_exit == frozenset()


def test_the_open_syscall_event_itself_is_still_saved_at_sys_enter() -> None:
    enter, exits, _ = syscall_interest(ids("security_file_open", "openat"))
    assert BY_NAME["openat"].id in enter
    assert not {BY_NAME[n].id for n in ("open", "openat2", "creat")} & enter
    assert OPEN_CALLS <= exits


def test_events_that_need_state_from_sys_enter_keep_it() -> None:
    enter, exits, _ = syscall_interest(ids("mem_prot_alert", "magic_write"))
    for name in ("mmap", "mprotect", "write", "pwrite64"):
        assert BY_NAME[name].id in enter, name
        assert BY_NAME[name].id in exits, name
