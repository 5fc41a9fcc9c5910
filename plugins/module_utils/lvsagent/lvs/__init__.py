"""IPVS load balancing: health checkers, the reconciler and the engine that drives them."""

from __future__ import annotations

from .engine import LvsEngine

__all__ = ["LvsEngine"]
