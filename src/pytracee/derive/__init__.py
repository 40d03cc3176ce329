"""Events made in user space from other events (Tracee's derived events)."""
