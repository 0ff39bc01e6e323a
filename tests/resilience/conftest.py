"""Fixtures of the resilience suite."""

from __future__ import annotations
