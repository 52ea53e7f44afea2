"""Decode engine: coalescing, micro-batching, device choice, decoded-tile and response caches."""
from tileserver.engine.engine import DEVICES, DecodeEngine, resolve_device
from tileserver.engine.responses import ResponseCache
from tileserver.engine.stats import EngineStats

__all__ = ["DEVICES", "DecodeEngine", "EngineStats", "ResponseCache", "resolve_device"]
