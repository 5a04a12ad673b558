"""`<think>…</think>` in content becomes `reasoning_content`, wherever the chunk boundaries fall."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given
from hypothesis import strategies as st

from tierwise.tiers.reasoning import ThinkSplitter, split_think_tags

ANSWER = "<think>2 plus 3: count on from 2.</think>The answer is 5."


def _split(pieces: list[str]) -> tuple[str, str]:
    splitter, reasoning, answer = ThinkSplitter(), [], []
    for piece in pieces:
        r, a = splitter.feed(piece)
        reasoning.append(r)
        answer.append(a)
    r, a = splitter.flush()
    return "".join(reasoning) + r, "".join(answer) + a


def test_tags_split_across_chunks():
    assert _split(["<th", "ink>2 plus", " 3</thi", "nk>5"]) == ("2 plus 3", "5")


@given(st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=8))
def test_any_chunking_gives_the_same_split(cuts):
    bounds = [0, *sorted(cuts), len(ANSWER)]
    pieces = [ANSWER[a:b] for a, b in itertools.pairwise(bounds)]
    assert _split(pieces) == ("2 plus 3: count on from 2.", "The answer is 5.")


def test_text_without_tags_and_a_lone_angle_bracket_pass_unchanged():
    assert _split(["2 < 3 and 5 > 4, <th", "e end"]) == ("", "2 < 3 and 5 > 4, <the end")


def test_the_stream_carries_reasoning_content_and_closes_the_tiers_stream():
    closed = []

    async def tier():
        try:
            for piece in ("<think>hm", "m</think>", "Five."):
                yield {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        finally:
            closed.append(True)

    async def main():
        return [c async for c in split_think_tags(tier())]

    deltas = [c["choices"][0]["delta"] for c in asyncio.run(main())]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "hmm"
    assert "".join(d.get("content", "") for d in deltas) == "Five."
    assert closed == [True]
