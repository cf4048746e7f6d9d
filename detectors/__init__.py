"""Pluggable detectors that watch a training trace and report findings."""

from detectors.base import Detector, Finding, replay
from detectors.registry import available, create, expand, register

__all__ = ["Detector", "Finding", "replay", "available", "create", "expand", "register"]
