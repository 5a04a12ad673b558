"""Reasoning written inline — DeepSeek-R1-style `<think>…</think>` in `content` — moved to `reasoning_content`,
the field reasoning-aware clients read (and the one vLLM's reasoning parsers fill). For tiers configured with
`think_tags: true`. Tags split across chunks are handled: text that may be the start of a tag is held back until
the next chunk says. Usage::

    stream = split_think_tags(tier.generate(request))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

OPEN, CLOSE = "<think>", "</think>"


class ThinkSplitter:
    """Splits one choice's content pieces into (reasoning, answer) text, across chunk boundaries."""

    def __init__(self) -> None:
        self.inside = False
        self.seen_open = False
        self._pending = ""

    def feed(self, text: str) -> tuple[str, str]:
        """The reasoning and the answer text that can be released after `text`."""
        reasoning: list[str] = []
        answer: list[str] = []
        buffer = self._pending + text
        self._pending = ""
        while buffer:
            tag = CLOSE if self.inside else OPEN
            at = buffer.find(tag)
            if at >= 0:
                (reasoning if self.inside else answer).append(buffer[:at])
                buffer = buffer[at + len(tag) :]
                self.seen_open = self.seen_open or tag == OPEN
                self.inside = not self.inside
                continue
            keep = _partial_tag_suffix(buffer, tag)  # "<thi" may be the start of the tag: wait for more
            (reasoning if self.inside else answer).append(buffer[: len(buffer) - keep])
            self._pending = buffer[len(buffer) - keep :]
            break
        return "".join(reasoning), "".join(answer)

    def flush(self) -> tuple[str, str]:
        """What is still held back when the answer ends (a partial tag that never completed is text)."""
        pending, self._pending = self._pending, ""
        return (pending, "") if self.inside else ("", pending)


def _partial_tag_suffix(text: str, tag: str) -> int:
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


async def split_think_tags(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """The stream with each choice's `<think>` text moved from `content` to `reasoning_content`."""
    splitters: dict[int, ThinkSplitter] = {}
    try:
        async for chunk in chunks:
            for choice in chunk.get("choices") or []:
                _split_choice(choice, splitters.setdefault(int(choice.get("index", 0)), ThinkSplitter()))
            yield chunk
    finally:  # closing this stream must close the tier's (it frees the tier's slot and model)
        await chunks.aclose()  # type: ignore[attr-defined]


def _split_choice(choice: dict[str, Any], splitter: ThinkSplitter) -> None:
    delta = choice.get("delta") or {}
    reasoning, answer = splitter.feed(delta["content"]) if isinstance(delta.get("content"), str) else ("", "")
    if choice.get("finish_reason"):
        held_reasoning, held_answer = splitter.flush()
        reasoning, answer = reasoning + held_reasoning, answer + held_answer
    if "content" in delta or reasoning:
        choice["delta"] = _delta(delta, reasoning, answer)


def _delta(delta: dict[str, Any], reasoning: str, answer: str) -> dict[str, Any]:
    out = {k: v for k, v in delta.items() if k != "content"}
    if reasoning:
        out["reasoning_content"] = (out.get("reasoning_content") or "") + reasoning
    if answer or not reasoning:
        out["content"] = answer
    return out
