"""DETECT: signatures over events; their findings become events (detections)."""
