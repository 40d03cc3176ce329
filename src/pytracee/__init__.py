"""pytracee: runtime security and forensics for Linux with eBPF."""

__version__ = "0.1.0"
