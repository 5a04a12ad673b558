"""A judge: a (usually the strongest) tier that grades served answers and, on request, answers itself.

`HttpJudge` speaks to any OpenAI-compatible server (a tier's `base_url`) with httpx. It is asked for a grade
from 1 to 10 with a fixed prompt (`grading_prompt`); the first number from 1 to 10 in its reply is the grade,
mapped to a score in [0, 1] (`parse_grade`). A reply without one gives no label. Usage::

    async with HttpJudge(base_url="http://cloud:8000/v1", model="llama-3.1-70b") as judge:
        score = await judge.grade("What is 2+2?", "4")        # 1.0 when it says 10
        reference = await judge.answer("What is 2+2?")
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Self

import httpx

GRADE_MAX = 10
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


class Judge(ABC):
    """Grades answers; `model` is the name its own answers are labelled under."""

    model: str

    @abstractmethod
    async def grade(self, query: str, answer: str, *, model: str) -> float | None:
        """Score in [0, 1] for `answer` (given by `model`) to `query`; None when no grade came back."""

    @abstractmethod
    async def answer(self, query: str) -> str:
        """The judge's own answer to `query`."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()


class HttpJudge(Judge):
    """A judge behind an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None, max_tokens: int = 512,
                 timeout_s: float = 120.0) -> None:
        self.model = model
        self.max_tokens = max_tokens
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    async def _complete(self, content: str, *, max_tokens: int) -> str:
        body: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": content}],
                                "max_tokens": max_tokens, "temperature": 0.0}
        response = await self._client.post("/chat/completions", json=body)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"].get("content") or "")

    async def grade(self, query: str, answer: str, *, model: str) -> float | None:
        return parse_grade(await self._complete(grading_prompt(query, answer), max_tokens=16))

    async def answer(self, query: str) -> str:
        return await self._complete(query, max_tokens=self.max_tokens)

    async def aclose(self) -> None:
        await self._client.aclose()
