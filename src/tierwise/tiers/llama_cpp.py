"""A tier that runs a GGUF model in-process with llama.cpp (`llama_cpp.Llama`): the device tier.

llama.cpp blocks while it computes, so generation runs in a worker thread and hands chunks to the event loop
through a queue. A `Llama` object is not safe to share between threads: the tier keeps a pool of
`max_concurrent` instances (default 1) and each request borrows one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from tierwise.errors import ConfigError
from tierwise.tiers.base import Chunk, Tier, TierHealth, TierStreamBroken, TierUnavailable

if TYPE_CHECKING:
    from llama_cpp import Llama

    from tierwise.config import LlamaCppTierConfig
    from tierwise.protocol import ChatCompletionRequest

_END = object()


class LlamaCppTier(Tier):
    """Chat completions from a local GGUF file, with the chat template stored in the file."""

    config: LlamaCppTierConfig

    def __init__(self, config: LlamaCppTierConfig) -> None:
        super().__init__(config)
        self._pool: asyncio.Queue[Llama] | None = None
        self._models: list[Llama] = []
        self._load_error: str | None = None

    @property
    def model_name(self) -> str:
        return self.config.model_path.name

    async def start(self) -> None:
        path = self.config.model_path
        if not path.is_file():
            raise ConfigError(f"tier {self.name!r}: model_path {path} does not exist")
        self._pool = asyncio.Queue()
        for _ in range(self.config.max_concurrent):
            model = await asyncio.to_thread(self._load)
            self._models.append(model)
            self._pool.put_nowait(model)

    def _load(self) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError as err:  # the device extra is optional
            raise ConfigError(
                f"tier {self.name!r} needs llama-cpp-python: pip install 'tierwise[device]'"
            ) from err
        cfg = self.config
        try:
            return Llama(
                model_path=str(cfg.model_path),
                n_ctx=cfg.n_ctx,
                n_threads=cfg.n_threads,
                n_gpu_layers=cfg.n_gpu_layers,
                chat_format=cfg.chat_format,
                logits_all=cfg.logits_all,
                seed=cfg.seed if cfg.seed is not None else 0xFFFFFFFF,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise ConfigError(f"tier {self.name!r}: cannot load {cfg.model_path}: {err}") from err

    async def health(self) -> TierHealth:
        if self._pool is None:
            return TierHealth(False, "not started")
        busy = self.config.max_concurrent - self._pool.qsize()
        return TierHealth(True, f"loaded {self.model_name}; {busy}/{self.config.max_concurrent} busy")

    async def aclose(self) -> None:
        for model in self._models:
            model.close()
        self._models.clear()
        self._pool = None

    def _arguments(self, request: ChatCompletionRequest) -> dict[str, Any]:
        return {
            "messages": [{"role": m.role, "content": m.text()} for m in request.messages],
            "max_tokens": request.token_limit,
            # OpenAI's defaults, not llama-cpp-python's (0.2 / 0.95), so tiers agree on what a request means.
            "temperature": 1.0 if request.temperature is None else request.temperature,
            "top_p": 1.0 if request.top_p is None else request.top_p,
            "stop": request.stop_list or None,
            "seed": request.seed,
            "logprobs": bool(request.logprobs),
            "top_logprobs": request.top_logprobs if request.logprobs else None,
            "stream": True,
        }

    async def generate(self, request: ChatCompletionRequest) -> AsyncIterator[Chunk]:
        if self._pool is None:
            raise TierUnavailable(f"tier {self.name!r} is not started")
        model = await self._pool.get()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        worker = threading.Thread(
            target=self._produce,
            args=(model, self._arguments(request), queue, loop, cancelled),
            name=f"llama-{self.name}",
            daemon=True,
        )
        worker.start()
        completion_tokens = 0
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    if completion_tokens == 0:
                        raise TierUnavailable(f"tier {self.name!r} failed: {item}") from item
                    raise TierStreamBroken(f"tier {self.name!r} failed mid-answer: {item}") from item
                if any((c.get("delta") or {}).get("content") for c in item.get("choices", [])):
                    completion_tokens += 1
                yield item
            yield self._usage_chunk(model, completion_tokens)
        finally:
            cancelled.set()  # the worker stops at its next token if the client went away
            await asyncio.to_thread(worker.join)
            self._pool.put_nowait(model)

    @staticmethod
    def _produce(
        model: Llama,
        arguments: dict[str, Any],
        queue: asyncio.Queue[Any],
        loop: asyncio.AbstractEventLoop,
        cancelled: threading.Event,
    ) -> None:
        try:
            stream: Iterator[Any] = iter(model.create_chat_completion(**arguments))
            for chunk in stream:
                if cancelled.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, _to_plain(chunk))
        except Exception as err:  # handed to the event loop, which raises it there
            loop.call_soon_threadsafe(queue.put_nowait, err)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    def _usage_chunk(self, model: Llama, completion_tokens: int) -> Chunk:
        # llama-cpp-python's stream carries no usage; the context now holds prompt + generated tokens.
        prompt_tokens = max(int(model.n_tokens) - completion_tokens, 0)
        return {
            "id": "",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _to_plain(value: Any) -> Any:
    """llama.cpp hands back numpy floats in logprobs; JSON needs plain Python numbers."""
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()
    return value
