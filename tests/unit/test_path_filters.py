from __future__ import annotations

from pytracee.cli import Registry
from pytracee.policy import path_filters
from pytracee.policy.filters import parse_events


def sel(expr: str):  # type: ignore[no-untyped-def]
    return parse_events([expr], Registry(), set())


def test_prefixes_carry_the_bits_of_shorter_prefixes() -> None:
    pf = path_filters.build([sel("security_file_open.data.pathname=/etc/*"),
                             sel("security_file_open.data.pathname=/etc/ssh/*,/bin/ls"),
                             sel("magic_write.data.pathname=*.so")])
    assert pf.has == {0: 0b011, 1: 0b100}
    assert pf.prefix == {(0, b"/etc/"): 0b01, (0, b"/etc/ssh/"): 0b11}
    assert pf.exact == {(0, b"/bin/ls"): 0b10}
    assert pf.suffix == {(1, b"os."): 0b100}


def test_what_stays_in_user_space() -> None:
    pf = path_filters.build([sel("security_file_open.data.pathname=*etc*"),
                             sel("security_file_open.data.pathname!=/etc/*"),
                             sel("openat.data.pathname=/etc/*"),
                             sel("security_file_open.data.pathname=/" + "x" * 300)])
    assert pf.has == {} and not (pf.exact or pf.prefix or pf.suffix)


def test_too_many_values_is_a_usage_error() -> None:
    import pytest

    from pytracee.errors import UsageError

    values = ",".join(f"/p{i}" for i in range(path_filters.MAX_ENTRIES + 1))
    with pytest.raises(UsageError) as err:
        path_filters.build([sel(f"security_file_open.data.pathname={values}")])
    assert "too many exact pathname filter values: 2049" in str(err.value)
