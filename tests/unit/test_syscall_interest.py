"""What sys_enter and sys_exit are told to do per syscall, for a policy set's kernel bits."""

from pytracee.ebpf.tracer import syscall_interest
from pytracee.events.definitions import BY_NAME

OPEN_CALLS = {BY_NAME[n].id for n in ("open", "openat", "openat2", "creat")}


def ids(*names: str) -> dict[int, int]:
    return {BY_NAME[n].id: 1 for n in names}


def test_security_file_open_alone_is_built_at_sys_exit_with_nothing_saved() -> None:
    want = syscall_interest(ids("security_file_open"))
    assert want.at_exit == OPEN_CALLS
    assert not OPEN_CALLS & want.enter
    assert not OPEN_CALLS & want.saved  # sys_exit skips the per-thread lookup for them
    assert want.raw_exit == frozenset()


def test_the_open_syscall_event_itself_is_still_saved_at_sys_enter() -> None:
    want = syscall_interest(ids("security_file_open", "openat"))
    assert BY_NAME["openat"].id in want.enter and want.saved == {BY_NAME["openat"].id}
    assert not {BY_NAME[n].id for n in ("open", "openat2", "creat")} & want.enter
    assert want.at_exit == OPEN_CALLS


def test_events_that_need_state_from_sys_enter_keep_it() -> None:
    want = syscall_interest(ids("mem_prot_alert", "magic_write"))
    for name in ("mprotect", "pkey_mprotect", "write", "pwrite64"):
        assert BY_NAME[name].id in want.enter, name
        assert BY_NAME[name].id in want.saved, name
    # mmap's alert needs only its result and arguments: built at sys_exit, nothing saved
    assert want.at_exit == {BY_NAME["mmap"].id}
    assert BY_NAME["mmap"].id not in want.enter | want.saved


def test_raw_sys_enter_handles_every_call_but_saves_none() -> None:
    want = syscall_interest(ids("sys_enter"))
    assert BY_NAME["getppid"].id in want.enter and OPEN_CALLS <= want.enter
    assert want.saved == frozenset() and want.at_exit == frozenset()
