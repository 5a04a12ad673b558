"""Who labels traffic: a judge that grades answers, and the tiers that answer a sampled question again.

An `Answerer` answers a question (`model` names whose answers they are). A `Judge` is an answerer that also
grades an answer from 1 to 10 with a fixed prompt (`grading_prompt`); the first number from 1 to 10 in its
reply is the grade, mapped to a score in [0, 1] (`parse_grade`); a reply without one gives no label.

`TierAnswerer` and `TierJudge` speak through a tierwise `Tier` (any backend of the config: an OpenAI-compatible
server, a llama.cpp server, the in-process device model), so labelling calls models exactly as the gateway
does. Usage::

    tier = build_tier(settings.tier("cloud")); await tier.start()
    async with TierJudge(tier) as judge:
        score = await judge.grade("What is 2+2?", "4")        # 1.0 when it says 10
        reference = await judge.answer("What is 2+2?")
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from types import TracebackType
from typing import TYPE_CHECKING, Self

from tierwise.protocol import ChatCompletionRequest, ChatMessage, CompletionBuilder

if TYPE_CHECKING:
    from tierwise.tiers.base import Tier

GRADE_MAX = 10
GRADE_OUTPUT_TOKENS = 16  # room for "Grade: N" and a few words around it
ANSWER_OUTPUT_TOKENS = 512
_GRADE = re.compile(r"\b(10|[1-9])\b")
_INSTRUCTIONS = (
    "You grade answers. Read the question and the answer below, decide whether the answer is correct and "
    f"helpful, and reply with one line: 'Grade: N', N from 1 (wrong) to {GRADE_MAX} (fully correct)."
)


def grading_prompt(query: str, answer: str) -> str:
    """The user message the judge receives for one (query, answer)."""
    return f"{_INSTRUCTIONS}\n\n[Question]\n{query}\n\n[Answer]\n{answer}\n\nGrade:"


def parse_grade(reply: str) -> float | None:
    """The first grade 1..10 in the judge's reply as a score in [0, 1]; None when it gave none."""
    found = _GRADE.search(reply.split("Grade:", 1)[-1])
    return None if found is None else (int(found.group(1)) - 1) / (GRADE_MAX - 1)


class Answerer(ABC):
    """Answers questions; `model` is the name its answers are labelled under."""

    model: str

    @abstractmethod
    async def answer(self, query: str) -> str:
        """Its answer to `query`."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what it holds."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()


class Judge(Answerer):
    """An answerer that also grades answers."""

    @abstractmethod
    async def grade(self, query: str, answer: str, *, model: str) -> float | None:
        """Score in [0, 1] for `answer` (given by `model`) to `query`; None when no grade came back."""


class TierAnswerer(Answerer):
    """A started `Tier` answering one user message, greedily (temperature 0), as the gateway would call it."""

    def __init__(self, tier: Tier, *, max_tokens: int = ANSWER_OUTPUT_TOKENS) -> None:
        self.tier = tier
        self.model = tier.model_name
        self.max_tokens = max_tokens

    async def complete(self, content: str, *, max_tokens: int) -> str:
        request = ChatCompletionRequest(model=self.tier.name, messages=[ChatMessage(role="user", content=content)],
                                        max_tokens=max_tokens, temperature=0.0)
        builder = CompletionBuilder()
        async for chunk in self.tier.generate(request):
            builder.add(chunk)
        return str(builder.build(completion_id="label", model=self.model)["choices"][0]["message"]["content"] or "")

    async def answer(self, query: str) -> str:
        return await self.complete(query, max_tokens=self.max_tokens)

    async def aclose(self) -> None:
        await self.tier.aclose()


class TierJudge(TierAnswerer, Judge):
    """A tier as the judge: its grades come from `grading_prompt`, its own answers as `TierAnswerer`'s."""

    async def grade(self, query: str, answer: str, *, model: str) -> float | None:
        return parse_grade(await self.complete(grading_prompt(query, answer), max_tokens=GRADE_OUTPUT_TOKENS))
