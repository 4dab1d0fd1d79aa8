"""The wire formats the simulator speaks, by name."""

from __future__ import annotations

from evalcluster.simulator.formats.anthropic import AnthropicFormat
from evalcluster.simulator.formats.base import WireFormat
from evalcluster.simulator.formats.gemini import GeminiFormat
from evalcluster.simulator.formats.openai import OpenAIFormat

FORMATS: dict[str, WireFormat] = {
    f.name: f for f in (OpenAIFormat(), AnthropicFormat(), GeminiFormat())
}

__all__ = ["FORMATS", "AnthropicFormat", "GeminiFormat", "OpenAIFormat", "WireFormat"]
