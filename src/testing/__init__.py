"""Hypothesis strategies for testing SMTP code (placeholder)."""

from __future__ import annotations
