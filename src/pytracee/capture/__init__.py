"""Artifacts: copies of executed binaries, written file contents and executable memory
(`--capture`, `--artifacts`), and sha256 of executed binaries (`-o option:exec-hash`)."""

from pytracee.capture.options import DEFAULT_DIR, CaptureOptions, parse_capture
from pytracee.capture.stage import Capture

__all__ = ["DEFAULT_DIR", "Capture", "CaptureOptions", "parse_capture"]
