"""Run the real pytracee pipeline in the test process and collect its events."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from pytracee.capture import Capture
from pytracee.capture.options import CaptureOptions
from pytracee.cli import net_snaplen, network_stage, policy_runtime
from pytracee.ebpf.tracer import Tracer, boot_offset_ns
from pytracee.events.decoder import Decoder
from pytracee.events.definitions import EVENTS
from pytracee.events.event import Event
from pytracee.pipeline import Pipeline

PROGS = Path(__file__).parent / "progs"


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def write_batch(self, events: list[Event]) -> None:
        self.events.extend(events)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Session:
    """pytracee loaded with these --events/--scope; `drain()` returns what arrived."""

    def __init__(self, events: Sequence[str] = (), scope: Sequence[str] = (), *,
                 policies: Sequence[str | Path] = (), ring_bytes: int = 16 << 20,
                 exec_env: bool = False, capture: CaptureOptions | None = None) -> None:
        """`capture`: only its network part is used here (pcap files)."""
        runtime = policy_runtime(0, [str(p) for p in policies], events, scope)
        capture = capture or CaptureOptions()
        if capture.network:
            Capture(capture).prepare(runtime)  # the kernel sends every packet in scope, as pytracee
        self.tracer = Tracer(ring_bytes=ring_bytes)
        self.network = network_stage(capture, 5000, lambda v: self.pipeline.runtimes.get(v))
        self.tracer.load(runtime, exec_env=exec_env, net_snaplen=net_snaplen(capture))
        self.sink = Collect()
        self.pipeline = Pipeline(self.tracer, Decoder(EVENTS, boot_offset_ns()), runtime, [self.sink],
                                 network=self.network)

    def drain(self, quiet_ms: int = 200, timeout: float = 10.0) -> list[Event]:
        """Read until nothing arrives for quiet_ms."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pipeline.drain_once(quiet_ms):
                break
        return self.sink.events

    def close(self) -> None:
        self.network.close()
        self.tracer.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


def of(events: list[Event], name: str, **ctx: object) -> list[Event]:
    """Events of one name whose task context has the given values."""
    return [e for e in events if e.name == name
            and all(getattr(e.ctx, k) == v for k, v in ctx.items())]
