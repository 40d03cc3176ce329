"""The `pytracee` command: Tracee's flags, pytracee's pipeline."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click
import orjson

from pytracee.config import LOG_LEVELS, load_config
from pytracee.errors import EnvironmentProblem, UsageError, UsageErrors
from pytracee.events import definitions
from pytracee.events.definitions import EVENTS, EventDef
from pytracee.sinks.outputs import OutputConfig, parse_outputs

__all__ = ["OutputConfig", "main", "parse_outputs", "trace"]

if TYPE_CHECKING:
    from pytracee.policy.runtime import PolicyRuntime


class Registry:
    """The event table, as the filter grammar wants to see it."""

    @staticmethod
    def lookup(name: str) -> EventDef | None:
        return definitions.lookup(name)

    @staticmethod
    def all_events() -> Iterable[EventDef]:
        return EVENTS.values()


def default_event_ids() -> set[int]:
    return {d.id for d in definitions.events_in_set("default")}


def _ring_bytes(buffers: Sequence[str]) -> int:
    from pytracee.ebpf.tracer import default_ring_bytes

    size = default_ring_bytes()
    for raw in buffers:
        key, sep, value = raw.partition("=")
        if key not in ("kernel.events", "events") or not sep:
            raise UsageError(f"unknown buffer setting {raw!r} (expected kernel.events=<pages>)", token=raw)
        try:
            pages = int(value)
        except ValueError:
            raise UsageError(f"buffer size must be a number of pages: {value!r}", token=raw) from None
        if pages < 1 or pages & (pages - 1):
            raise UsageError(f"buffer size must be a power of two pages: {pages}", token=raw)
        size = pages * 4096
    return size


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"pytracee: {message}", err=True)
    sys.exit(code)


def _fail_usage(exc: UsageError) -> NoReturn:
    """A user mistake, or all of them when they were found together: one line each, exit 2."""
    for err in getattr(exc, "errors", [exc]):
        click.echo(f"pytracee: {err}", err=True)
    sys.exit(2)


def policy_runtime(version: int, policies: Sequence[str], events: Sequence[str],
                   scope: Sequence[str]) -> PolicyRuntime:
    """The policy set to run: from --policy files, or the one policy --events/--scope make."""
    from pytracee.policy.compile import cli_policy_set, compile_policies
    from pytracee.policy.files import load_policies
    from pytracee.policy.runtime import build_runtime

    if policies:
        pset = compile_policies(load_policies(list(policies)))
        wheres: list[str] | None = [p.where for p in pset.policies]
    else:
        pset, wheres = cli_policy_set(events, scope, default_event_ids()), None
    return build_runtime(version, pset.names(), [p.scope for p in pset.policies],
                         [p.selection for p in pset.policies], wheres)


def load_signatures(dirs: Sequence[str]) -> list[Any]:
    """Built-in signatures plus --signatures-dir ones, their events registered. A bad
    signature file is a usage error (every bad file is reported, one line each); so is
    an id two files define (both named). A user signature may replace the built-in of
    its id: a warning line says so."""
    from pytracee.detect.engine import register
    from pytracee.detect.loader import (builtin_signatures, load_signature_dirs, warn_replaced,
                                        with_builtins)
    from pytracee.detect.signature import SignatureSetError

    user, errors = load_signature_dirs(dirs)
    if errors:
        raise UsageErrors(errors)
    sigs, replaced = with_builtins(builtin_signatures(), user)
    try:
        register(sigs)
    except SignatureSetError as exc:
        raise exc.usage from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    warn_replaced(replaced)
    return sigs


def trace(events: Sequence[str], scope: Sequence[str], policies: Sequence[str],
          output: Sequence[str], buffers: Sequence[str], stores: Sequence[str] = (),
          enrichment: Sequence[str] = (), signatures_dirs: Sequence[str] = (),
          signatures_config: str | None = None, server: Sequence[str] = (),
          capture: Sequence[str] = (), artifacts: Sequence[str] = ()) -> int:
    from pytracee.capture import Capture, parse_capture
    from pytracee.ebpf.tracer import Tracer, boot_offset_ns
    from pytracee.enrich.options import parse_enrich_options
    from pytracee.enrich.setup import Enrichment
    from pytracee.events.decoder import Decoder
    from pytracee.detect.engine import DataStores, Engine, active
    from pytracee.detect.loader import load_params
    from pytracee.pipeline import Pipeline
    from pytracee.server import parse_server_options, start_server
    from pytracee.sinks.outputs import build_streams
    from pytracee.sinks.stream import Stream
    from pytracee.sinks.table_sink import NoneSink

    all_sigs = load_signatures(signatures_dirs)
    params = load_params(signatures_config)
    if policies and (events or scope):
        raise UsageError("--policy cannot be combined with --scope or --events "
                         "(put them in a policy file)", token="--policy")
    runtime = policy_runtime(0, policies, events, scope)
    out = parse_outputs(output)
    for warning in out.warnings:
        logging.getLogger("pytracee.outputs").warning(warning)
    ring = _ring_bytes(buffers)
    server_opts = parse_server_options(server)
    capture_opts = parse_capture(capture, artifacts)
    opts = parse_enrich_options(stores, enrichment)
    if out.ancestry and not opts.proctree:
        raise UsageError("option:ancestry needs the process tree (drop --stores none)",
                         token="option:ancestry")

    tracer = Tracer(ring_bytes=ring)
    enrich: Enrichment | None = None
    http: Any = None
    streams: list[Stream] = []
    arts: Capture | None = None
    network: Any = None
    try:
        boot = boot_offset_ns()
        enrich = Enrichment(opts, tracer, boot)
        enrich.check(runtime)
        # Outputs before the kernel side: a bad template or an unwritable path is
        # reported before anything is loaded. Nothing is written until start().
        streams = build_streams(
            out, lambda v: pipeline.policy_names(v), known_policies=runtime.names,
            containers=enrich.show_containers(), parent_comm=enrich.parent_comm,
            ancestry=enrich.ancestry_of(out.ancestry) if out.ancestry else None,
            parent_chain=enrich.parent_chain)
        sigs = active(all_sigs, set(runtime.event_bits))
        # One engine for the whole run (a reload changes which signatures it runs).
        engine = Engine(sigs, params, DataStores(enrich.tree, enrich.manager)) if all_sigs else None
        # Signatures that read the environment need it in the exec events (decided per
        # policy set: a reload may select such a signature).
        def wants_env(rt: PolicyRuntime) -> bool:
            return out.exec_env or any(getattr(s, "needs_exec_env", False)
                                       for s in active(all_sigs, set(rt.event_bits)))

        runtime.exec_env = wants_env(runtime)
        exec_env = runtime.exec_env
        # Artifacts (--capture) and option:exec-hash: capture's input events go to the
        # kernel for every policy before it loads.
        if capture_opts.enabled or out.exec_hash is not None:
            arts = Capture(capture_opts, out.exec_hash)
            arts.prepare(runtime)
        network = network_stage(capture_opts, opts.dns_max_entries,
                                lambda v: pipeline.runtimes.get(v))
        tracer.load(runtime, exec_env=exec_env, signals=enrich.signals(),
                    capture_write=capture_opts.write, net_snaplen=net_snaplen(capture_opts),
                    before_attach=enrich.seed_kernel)
        pipeline = Pipeline(tracer, Decoder(EVENTS, boot), runtime, [],
                            enrich.enricher(lambda v: pipeline.event_bits(v)), engine, arts,
                            network)
        pipeline.sinks.extend(streams or [NoneSink()])
        enrich.start(runtime)
        if server_opts is not None:
            http = start_server(server_opts, pipeline, enrich, engine)
        reload_tick = _reloader(pipeline, boot, policies, events, scope, enrich, all_sigs,
                                wants_env)

        def tick() -> None:
            reload_tick()
            enrich.tick()
        for stream in streams:
            stream.start()
        quiet_collector()  # before "tracing": that line says the loop is about to start
        # Said once Ctrl-C is handled and /healthz is OK: a script that waits for this line
        # can signal pytracee and scrape it at once.
        pipeline.run(tick, on_start=lambda: click.echo(
            f"pytracee: tracing {len(runtime.event_bits)} events with {len(runtime.names)} "
            f"{'policy' if len(runtime.names) == 1 else 'policies'} (Ctrl-C to stop)", err=True))
        from pytracee.sinks.stream import close_streams, delivery_summary

        # Also those the pipeline dropped (reader gone). Says what it waits for; a second
        # Ctrl-C stops the wait, and what was not delivered is counted per output.
        close_streams(streams, lambda line: click.echo(line, err=True))
        click.echo(pipeline.summary(streams) + delivery_summary(streams) + enrich.summary()
                   + (engine.summary() if engine is not None else ""), err=True)
    finally:
        if http is not None:
            http.stop()  # before the tracer closes: scrapes read its maps
        for stream in streams:  # after an error: no-op when closed above
            stream.close()
        if enrich is not None:
            enrich.stop()
        if arts is not None:
            arts.close()  # no-op when the pipeline closed it
        if network is not None:
            network.close()
        tracer.close()
    return 0


def quiet_collector() -> None:
    """Before the event loop: what start-up built (definitions, policies, the seeded
    process tree) stays for the whole run, so it is kept out of every collection, and
    collections come less often. Events are freed by their reference counts as soon as
    they are written; at the default threshold the collector ran about 240 times over
    the mixed workload and took ~10 % of the reader's CPU."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def net_snaplen(capture: Any) -> int:
    """Bytes of each packet the kernel sends: enough for the network events' parsers
    (DNS messages, HTTP heads), more when the pcap capture keeps more payload."""
    from pytracee.ebpf.tracer import DEFAULT_NET_SNAPLEN, MAX_NET_SNAPLEN

    if not capture.network:
        return DEFAULT_NET_SNAPLEN
    if capture.pcap_snaplen is None:
        return MAX_NET_SNAPLEN
    return max(DEFAULT_NET_SNAPLEN, 120 + capture.pcap_snaplen)  # IPv6 + TCP options: <= 120


def network_stage(capture: Any, dns_max_entries: int,
                  runtime_of: Callable[[int], Any]) -> Any:
    """The network stage (derive/network.py), with pcap files when --capture network."""
    import os

    from pytracee.derive.network import NetworkStage
    from pytracee.net.dnscache import DnsCache
    from pytracee.net.pcap import PcapSet

    pcap = (PcapSet(os.path.join(capture.dir, "pcap"), capture.pcap_split, capture.pcap_snaplen)
            if capture.network else None)
    return NetworkStage(runtime_of, DnsCache(dns_max_entries), pcap)


def _reloader(pipeline: Any, boot: int, policies: Sequence[str], events: Sequence[str],
              scope: Sequence[str], enrich: Any, all_sigs: Sequence[Any] = (),
              wants_env: Callable[[Any], bool] | None = None) -> Callable[[], None]:
    """SIGHUP, or a change in a --policy file or directory, reloads the policies."""
    import signal

    from pytracee.ebpf.libbpf import BpfError
    from pytracee.policy.reload import PolicyWatcher, reload_event, self_context

    hup = [False]
    signal.signal(signal.SIGHUP, lambda *_: hup.__setitem__(0, True))
    watcher = PolicyWatcher(policies) if policies else None
    ctx = self_context(boot)
    log = logging.getLogger("pytracee.policy")

    def tick() -> None:
        if not (hup[0] or (watcher is not None and watcher.changed())):
            return
        hup[0] = False
        if not policies:  # --events/--scope were read once: there is no file to read again
            log.warning("SIGHUP: nothing to reload (no --policy given); tracing goes on "
                        "with the --events and --scope it started with")
            return
        if watcher is not None:
            watcher.sync()  # one reload per change, whichever noticed it first
        current = pipeline.runtime
        try:
            new = policy_runtime(current.version + 1, policies, events, scope)
            enrich.check(new)
            if wants_env is not None:
                new.exec_env = wants_env(new)
            pipeline.reload(new)
            if pipeline.engine is not None:
                from pytracee.detect.engine import active

                pipeline.engine.set_signatures(active(all_sigs, set(new.event_bits)))
        except (UsageError, BpfError) as exc:
            # A kernel refusal leaves the new set unswitched: the running one stays.
            log.error("policy reload refused, the running policies stay: %s", exc)
            pipeline.emit(reload_event(ctx, current.version, current.names, str(exc)))
            return
        # A status line, as "tracing" is: shown at the default log level.
        click.echo(f"pytracee: policies reloaded (version {new.version}): {', '.join(new.names)}",
                   err=True)
        pipeline.emit(reload_event(ctx, new.version, new.names, None))

    return tick


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--config FILE: flag values from YAML; flags given on the command line win."""
    if value is None:
        return None
    try:
        ctx.default_map = {**(ctx.default_map or {}), **load_config(value)}
    except UsageError as exc:
        _fail(2, str(exc))
    return value


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-e", "--events", "events", multiple=True, metavar="EXPR",
              help="Events to trace and their filters: openat, 'open*', tag=fs, -close, "
                   "openat.data.pathname=/etc/*, close.retval!=0.")
@click.option("-s", "--scope", "scope", multiple=True, metavar="EXPR",
              help="Which processes: comm=bash, pid=1234, uid>1000, mntns=..., follow, pid=new, tree=PID.")
@click.option("-o", "--output", "output", multiple=True, metavar="OUT",
              help="table (default), json, json:/path, gotemplate=/t.j2[:/path], webhook:URL, "
                   "forward:tcp://host:port, none, option:parse-arguments|exec-env|ancestry[=N]|args=all; "
                   "or destinations.<name>.{type,format,path,url,rotate}=... and "
                   "streams.<name>.{destinations,filters.events,filters.policies,buffer.mode,"
                   "buffer.size}=...")
@click.option("-p", "--policy", "policies", multiple=True, metavar="FILE|DIR",
              help="Tracee policy files (repeatable; at most 64 policies). Reloaded on SIGHUP "
                   "and when the files change.")
@click.option("-c", "--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
              callback=_load_config, help="YAML file with flag values (flags override it).")
@click.option("-b", "--buffers", "buffers", multiple=True, metavar="kernel.events=PAGES",
              help="Ring buffer size in pages (power of two; default 1/128 of the host's "
                   "memory, 16 to 256 MiB).")
@click.option("--stores", "stores", multiple=True, metavar="OPT",
              help="Process tree: process, process.max-processes=N (default 10000), "
                   "process.exited-ttl=SECONDS, or none. DNS cache: dns.max-entries=N "
                   "(default 5000).")
@click.option("-E", "--enrichment", "enrichment", multiple=True, metavar="OPT",
              help="Container data: container (default), container.docker.socket=PATH "
                   "(also podman, crio), container.wait=MS, or none.")
@click.option("--signatures-dir", "signatures_dirs", multiple=True, metavar="DIR",
              help="More signatures: Python files, .rego files, YAML detectors (repeatable).")
@click.option("--signatures-config", "signatures_config", metavar="FILE",
              help="YAML: parameters and allow-lists per signature id.")
@click.option("--server", "server", multiple=True, metavar="OPT",
              help="HTTP server: http-address=HOST:PORT (default 127.0.0.1:3366), metrics, "
                   "healthz; allow-remote to listen on a non-loopback address.")
@click.option("--capture", "capture", multiple=True, metavar="OPT",
              help="Artifacts (Tracee v0.24): exec, write, write=/prefix*, mem, network, "
                   "pcap:single|process|container|command, pcap-snaplen:default|headers|max|SIZE, "
                   "dir:/path (default /tmp/pytracee/out), clear-dir.")
@click.option("-a", "--artifacts", "artifacts", multiple=True, metavar="OPT",
              help="Artifacts (Tracee's newer names): executable, file-write, "
                   "file-write.filters=path=/prefix*, memory-regions, network, "
                   "network.pcap.split=..., network.pcap.snaplen=..., dir.path=/path, dir.clear.")
@click.option("-l", "--log-level", default="warning",
              type=click.Choice(LOG_LEVELS), help="Log level.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, _p, v: _print_version(ctx) if v else None,
              help="Version, git revision, kernel and libbpf; then exit.")
@click.pass_context
def main(ctx: click.Context, events: tuple[str, ...], scope: tuple[str, ...],
         policies: tuple[str, ...], output: tuple[str, ...], buffers: tuple[str, ...],
         stores: tuple[str, ...], enrichment: tuple[str, ...], signatures_dirs: tuple[str, ...],
         signatures_config: str | None, server: tuple[str, ...], capture: tuple[str, ...],
         artifacts: tuple[str, ...], log_level: str) -> None:
    """Trace syscalls and process events with eBPF. Without options: Tracee's default events."""
    logging.basicConfig(level=log_level.upper(), format="pytracee: %(levelname)s %(name)s: %(message)s")
    # libbpf explains its failures at length; we report them in one line, so its
    # own log is for --log-level debug.
    logging.getLogger("pytracee.libbpf").setLevel(logging.DEBUG if log_level == "debug" else logging.CRITICAL)
    if ctx.invoked_subcommand is not None:
        return
    try:
        code = trace(events, scope, policies, output, buffers, stores, enrichment,
                     signatures_dirs, signatures_config, server, capture, artifacts)
    except UsageError as exc:
        _fail_usage(exc)
    except EnvironmentProblem as exc:
        _fail(1, str(exc))
    sys.exit(code)


def _print_version(ctx: click.Context | None = None) -> None:
    from pytracee.version import lines

    for line in lines():
        click.echo(line)
    if ctx is not None:
        ctx.exit(0)


@main.command("version")
def version_cmd() -> None:
    """Version, git revision, kernel and libbpf."""
    _print_version()


@main.group("list")
def list_cmd() -> None:
    """List what pytracee knows."""


@list_cmd.command("events")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@click.argument("patterns", nargs=-1)
def list_events(as_json: bool, patterns: tuple[str, ...]) -> None:
    """Every event with its id, sets and arguments (optionally filtered: names, globs, tag=X)."""
    from pytracee.policy.filters import parse_events

    try:  # signatures' events and sets are events too, as for -e
        load_signatures(())
    except UsageError as exc:
        _fail_usage(exc)
    evs = sorted((d for d in EVENTS.values() if not d.internal), key=lambda d: d.id)
    if patterns:
        try:
            ids = parse_events(list(patterns), Registry(), set()).event_ids
        except UsageError as exc:
            _fail(2, str(exc))
        evs = [d for d in evs if d.id in ids]
    for d in evs:
        if as_json:
            click.echo(orjson.dumps({
                "id": d.id, "name": d.name, "sets": list(d.sets),
                "args": [{"name": a.name, "type": a.type} for a in d.args],
            }).decode())
        else:
            args = ", ".join(f"{a.type} {a.name}" for a in d.args)
            click.echo(f"{d.id:<5} {d.name:<28} [{','.join(d.sets)}] ({args})")


@list_cmd.command("signatures")
@click.option("--signatures-dir", "signatures_dirs", multiple=True, metavar="DIR")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per signature.")
def list_signatures(signatures_dirs: tuple[str, ...], as_json: bool) -> None:
    """Every signature: id, name, severity, MITRE technique, selected events."""
    from pytracee.detect.engine import register
    from pytracee.detect.loader import builtin_signatures, load_signature_dirs, with_builtins
    from pytracee.detect.signature import SEVERITY_NAMES, SignatureSetError

    # Bad files are reported (one line each) and the others still listed; exit 2.
    user, errors = load_signature_dirs(signatures_dirs)
    sigs, _ = with_builtins(builtin_signatures(), user)
    try:
        register(sigs)
    except SignatureSetError as exc:
        _fail(2, str(exc.usage))
    except ValueError as exc:
        _fail(2, str(exc))
    for err in errors:
        click.echo(f"pytracee: {err}", err=True)
    for s in sigs:
        md = s.metadata
        sev = SEVERITY_NAMES[md.severity] if 0 <= md.severity < len(SEVERITY_NAMES) else str(md.severity)
        events = [e.name + ("" if e.origin == "*" else f"({e.origin})") for e in s.selected_events]
        note = "" if s.kernel_can_trigger else "not produced on this kernel: runs on recorded events"
        if as_json:
            click.echo(orjson.dumps({
                "id": md.id, "name": md.name, "event": md.event_name, "severity": sev,
                "mitre": md.properties.get("external_id", ""), "events": events,
                "kernel_can_trigger": s.kernel_can_trigger}).decode())
        else:
            mitre = md.properties.get("external_id", "")
            click.echo(f"{md.id:<9} {md.event_name:<28} {sev:<8} {mitre:<10} "
                       f"{','.join(events)}{'  [' + note + ']' if note else ''}")
    if errors:
        sys.exit(2)


@main.command("analyze")
@click.argument("source", default="-", metavar="FILE|-")
@click.option("-e", "--events", "events", multiple=True, metavar="NAME",
              help="Signature events to run (default: every signature).")
@click.option("-o", "--output", "output", default="json", type=click.Choice(["json", "table"]))
@click.option("--signatures-dir", "signatures_dirs", multiple=True, metavar="DIR")
@click.option("--signatures-config", "signatures_config", metavar="FILE")
def analyze(source: str, events: tuple[str, ...], output: str, signatures_dirs: tuple[str, ...],
            signatures_config: str | None) -> None:
    """Run signatures over recorded JSON events (one per line, as `-o json` writes)
    and print the detections."""
    from pytracee.detect.engine import Engine, active
    from pytracee.detect.loader import load_params
    from pytracee.events.from_json import BadEvent, event_from_json
    from pytracee.sinks.json_sink import JsonSink
    from pytracee.sinks.table_sink import TableSink

    try:
        sigs = load_signatures(signatures_dirs)
        params = load_params(signatures_config)
        if events:
            wanted = set()
            for name in ",".join(events).split(","):
                d = definitions.lookup(name)
                if d is None or d.id < definitions.SIGNATURE_EVENTS_START:
                    raise UsageError(f"{name!r} is not a signature's event "
                                     "(see `pytracee list signatures`)", token=name)
                wanted.add(d.id)
            sigs = active(sigs, wanted)
    except UsageError as exc:
        _fail_usage(exc)
    engine = Engine(sigs, params)
    sink: Any = (JsonSink(open(sys.stdout.fileno(), "wb", closefd=False), lambda v: [])
                 if output == "json" else TableSink(sys.stdout))
    name = "<stdin>" if source == "-" else source
    try:
        stream = sys.stdin.buffer if source == "-" else open(source, "rb")
    except OSError as exc:
        _fail(2, f"{source}: cannot read: {exc.strerror}")
    count = 0
    with stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                ev = event_from_json(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                _fail(2, f"{name}:{lineno}: not JSON: {exc}")
            except BadEvent as exc:
                _fail(2, f"{name}:{lineno}: {exc}")
            count += 1
            found = [e for e in engine.process([ev]) if e is not ev]
            if found:
                sink.write_batch(found)
    engine.signal("source_complete")
    tail = engine.close()
    if tail:
        sink.write_batch(tail)
    sink.flush()
    click.echo(f"pytracee: events analyzed: {count}{engine.summary()}", err=True)


@list_cmd.command("policies")
@click.option("--signatures-dir", "signatures_dirs", multiple=True, metavar="DIR",
              help="More signatures, whose events rules may select (as with `pytracee -p`).")
@click.argument("paths", nargs=-1, required=True)
def list_policies(signatures_dirs: tuple[str, ...], paths: tuple[str, ...]) -> None:
    """Validate policy files and print what each policy selects (exit 2 on errors, all listed)."""
    from pytracee.policy.compile import compile_policies, describe
    from pytracee.policy.files import load_policies

    try:
        # As the runner does before it reads -p: signatures' events and threats
        # (event: anti_debugging, event: threat.severity>=high) are known.
        load_signatures(signatures_dirs)
        pset = compile_policies(load_policies(list(paths)))
    except UsageError as exc:  # every policy (and signature) file mistake
        _fail_usage(exc)
    click.echo(describe(pset))


if __name__ == "__main__":
    main()
