"""bugbench harness: case files -> probed training -> detectors -> scored tables."""

__version__ = "0.1.0"
