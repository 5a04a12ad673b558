"""OpenAI wire models: the chat-completions request, and helpers for chunks, completions and errors.

Requests are validated strictly where tierwise acts on a field and leniently elsewhere: fields the gateway does
not know (e.g. `repetition_penalty` for vLLM) are kept and passed through to HTTP backends unchanged.
Responses travel as plain dicts in the OpenAI chunk format, so unknown upstream fields (`reasoning_content`,
`usage` in the last chunk) survive untouched.
"""

from __future__ import annotations

import random
import time
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

MAX_MESSAGES = 4096
MAX_TOKENS_LIMIT = 1_000_000
MAX_CHOICES = 128  # `n`, as OpenAI bounds it: each choice costs a whole generation on the tier


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message; `content` is a string or a list of typed parts (only text parts are read here)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if p.text is not None)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class TextCompletionRequest(BaseModel):
    """`POST /v1/completions` body: a legacy text completion of one text prompt.

    It is routed and policed as the chat request `as_chat()` makes of it (the prompt as one user turn: what is
    scanned for personal data and what the router reads), and answered by the tier's `complete_text`. Refused
    with a 400 (`refusal()`): token-id prompts and batches of prompts, `best_of` > 1, `suffix`, `echo` with
    `logprobs` (prompt logprobs are not served). `echo` alone is done by the gateway.
    """

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    prompt: str | list[Any]
    max_tokens: int = Field(16, ge=1, le=MAX_TOKENS_LIMIT)  # OpenAI's default for this endpoint
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1, le=MAX_CHOICES)

    @property
    def text(self) -> str:
        """The prompt (valid only once `refusal()` found nothing to refuse)."""
        return self.prompt if isinstance(self.prompt, str) else str(self.prompt[0])

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def refusal(self) -> tuple[str, str] | None:
        """(param, why) for what this gateway does not serve, or None."""
        prompt = self.prompt
        if isinstance(prompt, list) and (not prompt or any(not isinstance(p, str) for p in prompt)):
            return "prompt", "token-id prompts are not served (tiers tokenize differently); send the prompt as text"
        if isinstance(prompt, list) and len(prompt) > 1:
            return "prompt", f"one prompt per request, not {len(prompt)}; send one request per prompt"
        if self.best_of is not None and self.best_of > 1:
            return "best_of", "best_of > 1 is not served; use n to get several completions"
        if self.suffix:
            return "suffix", "suffix (insertion) is not served"
        if self.echo and self.logprobs is not None:
            return "logprobs", "logprobs with echo (the prompt's logprobs) are not served"
        if isinstance(self.stop, list) and len(self.stop) > 4:
            return "stop", "at most 4 stop sequences"
        return None

    def as_chat(self) -> ChatCompletionRequest:
        """The chat request that routes and polices this one (its private `text_completion` is this request)."""
        fields = self.model_dump(exclude_unset=True, exclude={"prompt", "echo", "suffix", "best_of", "logprobs"})
        chat = ChatCompletionRequest.model_validate(
            {**fields, "messages": [{"role": "user", "content": self.text}], "max_tokens": self.max_tokens}
        )
        chat._text_completion = self
        return chat


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions` body."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    n: int | None = Field(None, ge=1, le=MAX_CHOICES, description="n > 1 only on tiers that serve several choices")
    reasoning_effort: str | None = Field(None, min_length=1, max_length=32)
    thinking_token_budget: int | None = Field(
        None, ge=0, le=MAX_TOKENS_LIMIT, description="tierwise extension: the most tokens a reasoning model may think"
    )
    # Set when this chat request stands for a legacy text completion (routes/completions.py): routed and policed
    # as this chat request, answered by the tier's text-completion method. Private: never sent or scanned.
    _text_completion: TextCompletionRequest | None = PrivateAttr(None)

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences")
        return stop

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def text_completion(self) -> TextCompletionRequest | None:
        """The legacy text completion this request stands for, if it does."""
        return self._text_completion

    @property
    def choices_wanted(self) -> int:
        return self.n or 1

    @property
    def wants_reasoning(self) -> bool:
        """The client asks a model to reason: an effort other than "none", or a thinking budget above 0."""
        return self.reasoning_effort not in (None, "none") or bool(self.thinking_token_budget)

    @property
    def wants_logprobs(self) -> bool:
        """Token logprobs asked for: chat's `logprobs: true`, or a text completion's `logprobs` (any number)."""
        text = self.text_completion
        return text.logprobs is not None if text is not None else bool(self.logprobs)

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def uses_tools(self) -> bool:
        """Tools offered and not switched off (`tool_choice: "none"`), or the legacy `functions`."""
        extra = self.model_extra or {}
        if extra.get("functions"):
            return extra.get("function_call") != "none"
        return bool(extra.get("tools")) and extra.get("tool_choice") != "none"

    @property
    def response_format_type(self) -> str | None:
        """`text`, `json_object`, `json_schema`, or None when the client asked for nothing."""
        value = (self.model_extra or {}).get("response_format")
        return str(value.get("type")) if isinstance(value, dict) else None

    @property
    def has_media(self) -> bool:
        """Any content part that is not text (an image, audio, a file)."""
        return any(
            isinstance(m.content, list) and any(p.type != "text" for p in m.content) for m in self.messages
        )

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return self.messages[-1].text()

    def conversation_text(self) -> str:
        return "\n".join(m.text() for m in self.messages)

    @cached_property
    def sent_fields(self) -> dict[str, Any]:
        """The request as the client sent it (only the fields it set): serialised once, and both what the
        personal-data scan reads and what every tier's payload is built from."""
        return self.model_dump(exclude_unset=True)

    @cached_property
    def outbound_text(self) -> str:
        """Every key and value the client sent, as text: what any tier's payload is made of (a dialect only
        renames or maps fields), so the personal-data policy sees all of it — contents, `user`, `metadata`,
        tools, a numeric `seed`, `stream_options`, a content part's `type` — not a list of fields chosen."""
        texts: list[str] = []
        stack: list[Any] = [self.sent_fields]
        while stack:  # iterative: client JSON may be nested as deep as the parser allows
            value = stack.pop()
            if isinstance(value, dict):
                stack.extend(value.keys())
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
            elif isinstance(value, str):
                texts.append(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                texts.append(str(value))  # a phone number sent as a JSON number is still a phone number
        return "\n".join(reversed(texts))


def new_completion_id() -> str:
    # an answer's id needs to be unique, not secret: 128 random bits without the system call of uuid4
    return f"chatcmpl-{random.getrandbits(128):032x}"


def new_text_completion_id() -> str:
    return f"cmpl-{random.getrandbits(128):032x}"


def error_body(
    message: str, *, error_type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


class CompletionBuilder:
    """Folds a stream of chat.completion.chunk dicts into one chat.completion dict.

    String fields of a delta are concatenated (so `content` and unknown ones like `reasoning_content` both
    survive); tool calls are merged by index; logprobs lists are concatenated; anything else keeps its last value.
    """

    def __init__(self) -> None:
        self.choices: dict[int, dict[str, Any]] = {}
        self.top: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None
        # (choice index, field) -> pieces, joined once in build(): concatenating as chunks arrive is quadratic
        self._pieces: dict[tuple[int, str], list[str]] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        for key, value in chunk.items():
            if key == "usage":
                if value:
                    self.usage = value
            elif key != "choices":
                self.top[key] = value
        for choice in chunk.get("choices") or []:
            self._add_choice(choice)

    def _add_choice(self, choice: dict[str, Any]) -> None:
        index = int(choice.get("index", 0))
        slot = self.choices.setdefault(
            index, {"index": index, "message": {"role": "assistant", "content": None}, "finish_reason": None}
        )
        message = slot["message"]
        for key, value in (choice.get("delta") or {}).items():
            if value is None:
                continue
            if key == "tool_calls":
                _merge_tool_calls(message.setdefault("tool_calls", []), value)
            elif isinstance(value, str) and key != "role":
                self._pieces.setdefault((index, key), []).append(value)
            else:
                message[key] = value
        if choice.get("logprobs"):
            merged = slot.setdefault("logprobs", {"content": []})
            merged["content"].extend(choice["logprobs"].get("content") or [])
        if choice.get("finish_reason"):
            slot["finish_reason"] = choice["finish_reason"]

    def build(self, *, completion_id: str, model: str) -> dict[str, Any]:
        for (index, key), pieces in self._pieces.items():
            self.choices[index]["message"][key] = "".join(pieces)
        body: dict[str, Any] = {
            **{k: v for k, v in self.top.items() if k not in {"object", "id"}},
            "id": completion_id,
            "object": "chat.completion",
            "created": self.top.get("created", int(time.time())),
            "model": model,  # the tier's model name, whatever the backend called it
            "choices": [self.choices[i] for i in sorted(self.choices)]
            or [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
        }
        if self.usage is not None:
            body["usage"] = self.usage
        return body


def _merge_tool_calls(merged: list[dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    for delta in deltas:
        index = delta.get("index", len(merged))
        while len(merged) <= index:
            merged.append({"function": {"name": "", "arguments": ""}})
        target = merged[index]
        for key, value in delta.items():
            if key == "function":
                for fkey, fval in (value or {}).items():
                    target["function"][fkey] = target["function"].get(fkey, "") + (fval or "")
            elif key != "index":
                target[key] = value
