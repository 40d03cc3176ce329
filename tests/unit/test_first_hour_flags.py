"""What a new user trips over in the first hour, on the command line: bad retval
operators, did-you-mean for misspelt names, `--capture dir:X` with nothing to capture."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from pytracee.capture import parse_capture
from pytracee.cli import Registry, load_signatures, main
from pytracee.enrich.options import parse_enrich_options
from pytracee.errors import UsageError
from pytracee.policy.filters import parse_events, parse_scope
from pytracee.server.options import parse_server_options

VALID_OPS = "(valid: = != < > <= >=)"


def error_of(fn: object, *args: object) -> UsageError:
    with pytest.raises(UsageError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


# -- 3. a bad retval operator is a retval filter's mistake -------------------

@pytest.mark.parametrize(("expr", "op"), [
    ("close.retval~5", "~"), ("close.retval=~5", "=~"), ("close.retval!~5", "!~"),
    ("close.retval==5", "=="), ("close.retval=<5", "=<"), ("close.retval:5", ":"),
])
def test_bad_retval_operator(expr: str, op: str) -> None:
    err = error_of(parse_events, [expr], Registry(), set())
    assert str(err) == f"invalid filter '{expr}': bad retval filter operator '{op}' {VALID_OPS}"
    assert err.token == expr


@pytest.mark.parametrize(("expr", "want"), [
    ("close.retval=-1", {"equal": {-1}}), ("close.retval>=-1", {"min": -1}),
    ("close.retval!=0x10", {"not_equal": {16}}), ("close.retval<0", {"max": -1}),
])
def test_good_retval_operators_still_parse(expr: str, want: dict[str, object]) -> None:
    f = parse_events([expr], Registry(), set()).retval_filters[3]
    assert {k: getattr(f, k) for k in want} == want


def test_bad_retval_operator_on_the_command_line_is_one_line_exit_2() -> None:
    res = CliRunner().invoke(main, ["-e", "close.retval~5"])
    assert (res.exit_code, res.output) == (
        2, f"pytracee: invalid filter 'close.retval~5': bad retval filter operator '~' "
           f"{VALID_OPS}\n")


# -- 4. did you mean ---------------------------------------------------------

@pytest.mark.parametrize(("expr", "message"), [
    ("comn=bash", "invalid scope 'comn=bash': unknown scope field 'comn' (did you mean 'comm'?)"),
    ("comn", "invalid scope 'comn': unknown scope field 'comn' (did you mean 'comm'?)"),
    ("uidd>0", "invalid scope 'uidd>0': unknown scope field 'uidd' (did you mean 'uid'?)"),
    ("xyzzy=1", "invalid scope 'xyzzy=1': unknown scope field 'xyzzy' (known: bin, binary, "
                "comm, container, exec, executable, follow, global, mntns, not-container, pid, "
                "pidns, tid, tree, uid, uts)"),
])
def test_scope_field_did_you_mean(expr: str, message: str) -> None:
    assert str(error_of(parse_scope, [expr])) == message


def test_scope_field_did_you_mean_on_the_command_line() -> None:
    res = CliRunner().invoke(main, ["-s", "comn=bash"])
    assert (res.exit_code, res.output) == (
        2, "pytracee: invalid scope 'comn=bash': unknown scope field 'comn' "
           "(did you mean 'comm'?)\n")


@pytest.mark.parametrize(("expr", "message"), [
    ("close.scope.comn=bash",
     "invalid filter 'close.scope.comn=bash': unknown scope field 'comn' (did you mean 'comm'?)"),
    ("close.retvl<0", "invalid filter 'close.retvl<0': unknown filter kind 'retvl' "
                      "(did you mean 'retval'?)"),
    ("close.foo.x=1", "invalid filter 'close.foo.x=1': unknown filter kind 'foo' "
                      "(expected data, args, retval or scope)"),
    ("tag=fss", "unknown event set 'fss' (did you mean 'fs'?)"),
    ("clsoe", "unknown event 'clsoe' (did you mean 'close'?)"),  # as before
    ("threat.severty>=high", "invalid threat selector 'threat.severty>=high': expected "
                             "threat.severity, threat.mitre.technique, threat.mitre.tactic or "
                             "threat.name with an operator (did you mean 'threat.severity'?)"),
])
def test_events_did_you_mean(expr: str, message: str) -> None:
    load_signatures(())
    assert str(error_of(parse_events, [expr], Registry(), set())) == message


@pytest.mark.parametrize(("stores", "enrichment", "message"), [
    (["proces"], [], "unknown store option 'proces' (did you mean 'process'?)"),
    (["process.max-process=5"], [],
     "unknown store option 'process.max-process=5' (did you mean 'process.max-processes=5'?)"),
    (["dns.max-entry=9"], [],
     "unknown store option 'dns.max-entry=9' (did you mean 'dns.max-entries=9'?)"),
    (["nonee"], [], "unknown store option 'nonee' (did you mean 'none'?)"),
    (["xyz"], [], "unknown store option 'xyz' (expected process, process.max-processes=N, "
                  "process.exited-ttl=SECONDS, dns, dns.max-entries=N or none)"),
    (["process.max-processes"], [], "unknown store option 'process.max-processes' (expected "
     "process, process.max-processes=N, process.exited-ttl=SECONDS, dns, dns.max-entries=N or "
     "none)"),
    ([], ["containr"], "unknown enrichment option 'containr' (did you mean 'container'?)"),
    ([], ["container.wiat=5"],
     "unknown enrichment option 'container.wiat=5' (did you mean 'container.wait=5'?)"),
    ([], ["container.docker.sockt=/x"], "unknown enrichment option "
     "'container.docker.sockt=/x' (did you mean 'container.docker.socket=/x'?)"),
    ([], ["container.dockr.socket=/x"], "unknown container runtime 'dockr' in "
     "'container.dockr.socket=/x' (did you mean 'docker'?)"),
    ([], ["container.containerd.socket=/x"], "unknown container runtime 'containerd' in "
     "'container.containerd.socket=/x' (known: docker, podman, crio)"),
    ([], ["xyz"], "unknown enrichment option 'xyz' (expected container, "
     "container.{docker|podman|crio}.socket=PATH, container.wait=MS or none)"),
])
def test_stores_and_enrichment_did_you_mean(stores: list[str], enrichment: list[str],
                                            message: str) -> None:
    err = error_of(parse_enrich_options, stores, enrichment)
    assert str(err) == message
    assert err.token == (stores or enrichment)[0]


@pytest.mark.parametrize(("capture", "artifacts", "suggestion"), [
    (["exce"], [], "exec"),
    (["writ"], [], "write"),
    (["dri:/x"], [], "dir:/x"),
    (["dir=/x"], [], "dir:/x"),
    (["write:/tmp/*"], [], "write=/tmp/*"),
    (["pcap-snaplne:max"], [], "pcap-snaplen:max"),
    (["artifact:exce"], [], "exec"),
    # --artifacts' names given to --capture, and the other way round
    (["executable"], [], "exec"),
    (["memory-regions"], [], "mem"),
    (["dir.path=/x"], [], "dir:/x"),
    (["file-write.filters=path=/tmp/*"], [], "write=/tmp/*"),
    ([], ["file-wirte"], "file-write"),
    ([], ["memory-region"], "memory-regions"),
    ([], ["dir.pth=/x"], "dir.path=/x"),
    ([], ["exec"], "executable"),
    ([], ["write"], "file-write"),
    ([], ["write=/tmp/*"], "file-write.filters=path=/tmp/*"),
    ([], ["dir:/x"], "dir.path=/x"),
    ([], ["clear-dir"], "dir.clear"),
    ([], ["pcap:process"], "network.pcap.split=process"),
])
def test_capture_option_did_you_mean(capture: list[str], artifacts: list[str],
                                     suggestion: str) -> None:
    item = (capture or artifacts)[0]
    err = error_of(parse_capture, capture, artifacts)
    assert str(err) == f"unknown capture option '{item}' (did you mean '{suggestion}'?)"
    assert err.token == item


def test_capture_option_without_a_close_name_lists_them() -> None:
    assert str(error_of(parse_capture, ["bogus"], [])) == (
        "unknown capture option 'bogus' (expected exec, write, write=/prefix*, mem, network, "
        "pcap:SPLIT, pcap-snaplen:N, dir:/path, clear-dir)")
    assert str(error_of(parse_capture, [], ["pcap:proces"])) == (
        "unknown capture option 'pcap:proces' (did you mean 'network.pcap.split=proces'?)")
    assert str(error_of(parse_capture, ["pcap:proces"], [])) == (
        "unknown pcap split 'proces' (did you mean 'process'?) (in 'pcap:proces')")
    assert str(error_of(parse_capture, [], ["network.pcap.split=bogus"])) == (
        "unknown pcap split 'bogus' (expected single, process, container, command) "
        "(in 'network.pcap.split=bogus')")


@pytest.mark.parametrize(("raw", "message"), [
    ("metric", "unknown server option 'metric' (did you mean 'metrics'?)"),
    ("helthz", "unknown server option 'helthz' (did you mean 'healthz'?)"),
    ("allow-remot", "unknown server option 'allow-remot' (did you mean 'allow-remote'?)"),
    ("http-adress=127.0.0.1:9090",
     "unknown server option 'http-adress=127.0.0.1:9090' (did you mean "
     "'http-address=127.0.0.1:9090'?)"),
    ("bogus", "unknown server option 'bogus' (expected http-address=HOST:PORT, metrics, "
              "healthz or allow-remote)"),
    ("metrics=yes", "unknown server option 'metrics=yes' (expected http-address=HOST:PORT, "
                    "metrics, healthz or allow-remote)"),
])
def test_server_option_did_you_mean(raw: str, message: str) -> None:
    err = error_of(parse_server_options, [raw])
    assert (str(err), err.token) == (message, raw)


# -- 5. --capture dir:X alone ------------------------------------------------

def _warnings(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    return [(r.name, r.levelno, r.getMessage()) for r in caplog.records]


@pytest.mark.parametrize(("capture", "artifacts", "message"), [
    (["dir:/tmp/out"], [], "--capture dir:/tmp/out sets where artifacts go, but no capture is "
                           "enabled (exec, write, mem, network)"),
    (["artifact:dir:/tmp/out"], [], "--capture artifact:dir:/tmp/out sets where artifacts go, "
                                    "but no capture is enabled (exec, write, mem, network)"),
    ([], ["dir.path=/tmp/out"], "--artifacts dir.path=/tmp/out sets where artifacts go, but no "
                                "capture is enabled (executable, file-write, memory-regions, "
                                "network)"),
    (["clear-dir"], [], "--capture clear-dir would empty the artifacts directory, but no "
                        "capture is enabled (exec, write, mem, network)"),
    (["dir:/tmp/out,clear-dir"], [], "--capture dir:/tmp/out --capture clear-dir set where "
                                     "artifacts go, but no capture is enabled (exec, write, "
                                     "mem, network)"),
])
def test_capture_dir_alone_warns(caplog: pytest.LogCaptureFixture, capture: list[str],
                                 artifacts: list[str], message: str) -> None:
    with caplog.at_level(logging.WARNING):
        opts = parse_capture(capture, artifacts)
    assert not opts.enabled  # accepted, as Tracee does
    assert _warnings(caplog) == [("pytracee.capture", logging.WARNING, message)]


@pytest.mark.parametrize(("capture", "artifacts", "enabled"), [
    (["dir:/tmp/out", "exec"], [], True), (["network", "dir:/tmp/out"], [], True),
    (["pcap-snaplen:max", "dir:/tmp/out"], [], True),
    ([], ["dir.path=/tmp/out", "memory-regions"], True), (["exec"], [], True), ([], [], False),
])
def test_capture_dir_with_a_capture_does_not_warn(caplog: pytest.LogCaptureFixture,
                                                  capture: list[str], artifacts: list[str],
                                                  enabled: bool) -> None:
    with caplog.at_level(logging.WARNING):
        opts = parse_capture(capture, artifacts)
    assert _warnings(caplog) == []
    assert opts.enabled is enabled


@pytest.mark.parametrize("value, message", [
    ("jsn", "unknown output 'jsn' (did you mean 'json'?)"),
    ("tabel:/tmp/x", "unknown output 'tabel:/tmp/x' (did you mean 'table:/tmp/x'?)"),
    ("webhok:http://h/x", "unknown output 'webhok:http://h/x' (did you mean 'webhook:http://h/x'?)"),
    ("option:parse-argument",
     "unknown output option 'parse-argument' (did you mean 'option:parse-arguments'?)"),
    ("destinations.a.typ=file", "unknown destination key 'typ' (did you mean 'type'?)"),
    ("streams.a.destination=x", "unknown stream key 'destination' (did you mean 'destinations'?)"),
])
def test_output_did_you_mean(value: str, message: str) -> None:
    from pytracee.sinks.outputs import parse_outputs

    with pytest.raises(UsageError) as ei:
        parse_outputs([value])
    assert ei.value.message == message
