"""Signatures on the kernel itself: loading modules into it."""

from __future__ import annotations

from pytracee.detect.builtin._common import meta, select
from pytracee.detect.signature import Signature
from pytracee.events.event import Event


class KernelModuleLoading(Signature):
    metadata = meta("TRC-1017", "Kernel module loading detected", "kernel_module_loading", 2,
                    "T1547.006", "Kernel Modules and Extensions", "persistence",
                    "A kernel module was loaded. Code in a module runs with the kernel's "
                    "privileges, out of reach of user-space defences: rootkits are loaded "
                    "this way to persist and hide.")
    selected_events = select("module_load")
    # pytracee's kernels are built without module support: no module_load for real.
    kernel_can_trigger = False

    def on_event(self, ev: Event) -> None:
        self.match(ev)


SIGNATURES = (KernelModuleLoading,)
