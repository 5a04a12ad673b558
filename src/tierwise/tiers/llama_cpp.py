"""A tier that runs a GGUF model with llama.cpp on this machine: the device tier.

Each of the `max_concurrent` slots is a worker process holding its own model (tiers/llama_worker.py, driven
through tiers/llama_process.py): llama.cpp blocks while it computes, a `Llama` is not thread-safe, and a crash
inside llama.cpp must not take the gateway down. A worker that dies is logged, its request fails
(`TierUnavailable` before the first chunk, `TierStreamBroken` after) and a new one is loaded. A slot returns to
the pool when its worker says the request ended, never from the client's side, so a client that goes away cannot
leave the tier busy.

Requests with tools go to llama-cpp-python's `chatml-function-calling` handler (`tools_chat_format`), which
knows less than the OpenAI API: the gaps are filled in tiers/translate.py (`llama_cpp_arguments`), and its
stream is reshaped here into OpenAI's tool-call deltas (`_ToolCallDeltas`). Usage::

    tier = LlamaCppTier(config)
    await tier.start()          # ConfigError if the model does not load
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from tierwise.errors import ConfigError, WorkerFailed
from tierwise.protocol import new_completion_id, new_text_completion_id
from tierwise.routing.answer_signals import AnswerConfidence
from tierwise.tiers.base import Chunk, Tier, TierHealth, TierRejected, TierStreamBroken, TierUnavailable
from tierwise.tiers.capabilities import Capabilities
from tierwise.tiers.http_answer import embeddings_from
from tierwise.tiers.llama_process import Exited, WorkerProcess
from tierwise.tiers.llama_worker import Done, Piece, WorkerSettings
from tierwise.tiers.translate import llama_cpp_arguments, llama_cpp_text_arguments

if TYPE_CHECKING:
    from tierwise.config import LlamaCppTierConfig
    from tierwise.protocol import ChatCompletionRequest, TextCompletionRequest

log = logging.getLogger("tierwise.tiers")

STOP_TIMEOUT_S = 5.0  # how long aclose() waits for a worker to exit before killing it
_RESTART_BACKOFF_S = (0.5, 30.0)  # first and longest wait between attempts to reload a dead worker's model
_CONFIDENCE_KEPT = 1024  # answers whose confidence is kept for the gateway to read after the stream


class LlamaCppTier(Tier):
    """Chat completions from a local GGUF file, with the chat template stored in the file."""

    config: LlamaCppTierConfig

    def __init__(self, config: LlamaCppTierConfig) -> None:
        super().__init__(config)
        self._idle: asyncio.Queue[WorkerProcess | None] | None = None  # None wakes a waiter: no worker is alive
        self._live: set[WorkerProcess] = set()  # loaded and serving
        self._workers: set[WorkerProcess] = set()  # every process not yet ended, loading ones included
        self._restarts: set[asyncio.Task[None]] = set()
        self._request_ids = itertools.count(1)
        self._closing = False
        self._confidences: dict[str, AnswerConfidence] = {}  # completion id -> confidence, oldest first

    @property
    def model_name(self) -> str:
        return self.config.model or self.config.model_path.stem  # a name, never the path (it says where files are)

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the loaded workers (for operators, and tests that kill one)."""
        return sorted(w.pid for w in self._live if w.pid is not None)

    def default_capabilities(self) -> Capabilities:
        # One choice per request (llama-cpp-python has no `n`); no reasoning controls; logprobs only from a model
        # that keeps every position's logits.
        return Capabilities(tools=self.config.tools_chat_format is not None, response_format=True, images=False,
                            context_length=self.config.n_ctx, text_completion=True, logprobs=self.config.logits_all)

    async def start(self) -> None:
        path = self.config.model_path
        if not path.is_file():
            raise ConfigError(f"tier {self.name!r}: model_path {path} does not exist")
        if importlib.util.find_spec("llama_cpp") is None:  # the device extra is optional
            raise ConfigError(f"tier {self.name!r} needs llama-cpp-python: pip install 'tierwise[device]'")
        self._closing = False
        self._idle = asyncio.Queue()
        loaded = await asyncio.gather(*(self._spawn() for _ in range(self.config.max_concurrent)),
                                      return_exceptions=True)
        if failures := [r for r in loaded if isinstance(r, BaseException)]:
            await self.aclose()
            raise failures[0]
        for worker in loaded:
            self._idle.put_nowait(worker)  # type: ignore[arg-type]

    async def _spawn(self) -> WorkerProcess:
        cfg = self.config
        settings = WorkerSettings(model_path=str(cfg.model_path), n_ctx=cfg.n_ctx, n_threads=cfg.n_threads,
                                  n_gpu_layers=cfg.n_gpu_layers, chat_format=cfg.chat_format,
                                  logits_all=cfg.logits_all, seed=cfg.seed)
        worker = WorkerProcess(settings, name=f"tierwise-{self.name}", loop=asyncio.get_running_loop(),
                               on_idle=self._on_idle, on_exit=self._on_exit)
        self._workers.add(worker)
        try:
            await asyncio.to_thread(worker.launch)
            await worker.ready
        except WorkerFailed as err:
            raise ConfigError(f"tier {self.name!r}: cannot load {cfg.model_path}: {err}") from None
        except BaseException:
            worker.kill()  # cancelled while loading (aclose): no await here, it would be cancelled too
            raise
        if worker.exited is not None:  # it died between saying Ready and this line
            raise ConfigError(f"tier {self.name!r}: the worker died after loading ({worker.exited.describe()})")
        self._live.add(worker)
        return worker

    def _on_idle(self, worker: WorkerProcess) -> None:
        if self._idle is not None and worker in self._live:
            self._idle.put_nowait(worker)

    def _on_exit(self, worker: WorkerProcess, exited: Exited) -> None:
        self._workers.discard(worker)
        if worker not in self._live or self._closing:
            return  # it never served (start() reports why) or it was asked to stop
        self._live.discard(worker)
        log.error("tier %r: model worker (pid %s) died: %s; reloading %s", self.name, worker.pid, exited.describe(),
                  self.config.model_path)
        if not self._live and self._idle is not None:
            self._idle.put_nowait(None)  # requests waiting in line fail over instead of waiting for the reload
        task = asyncio.get_running_loop().create_task(self._restart())
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self) -> None:
        delay, longest = _RESTART_BACKOFF_S
        while not self._closing:
            try:
                worker = await self._spawn()
            except Exception as err:  # a restart that fails is retried: the tier must come back by itself
                log.error("tier %r: reloading its model failed: %s; retrying in %.1f s", self.name, err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
                continue
            log.info("tier %r: model worker reloaded (pid %s)", self.name, worker.pid)
            self._on_idle(worker)
            return

    async def health(self) -> TierHealth:
        if self._idle is None:
            return TierHealth(False, "not started")
        slots = self.config.max_concurrent
        if not self._live:
            return TierHealth(False, f"no model worker alive; reloading {self.model_name}")
        busy = sum(1 for w in self._live if w.job is not None)
        down = f"; {slots - len(self._live)} reloading" if len(self._live) < slots else ""
        return TierHealth(True, f"loaded {self.model_name}; {busy}/{len(self._live)} busy{down}")

    async def aclose(self) -> None:
        self._closing = True
        restarts = list(self._restarts)
        for task in restarts:
            task.cancel()
        await asyncio.gather(*restarts, return_exceptions=True)
        workers = list(self._workers)
        self._live.clear()
        if self._idle is not None:
            self._idle.put_nowait(None)  # requests waiting in line give up
        self._idle = None
        await asyncio.gather(*(asyncio.to_thread(w.stop, STOP_TIMEOUT_S) for w in workers))

    async def _acquire(self) -> WorkerProcess:
        while True:
            idle = self._idle
            if idle is None:
                raise TierUnavailable(f"tier {self.name!r} is not started")
            if not self._live:
                raise TierUnavailable(f"tier {self.name!r}: no model worker alive (reloading after a crash)")
            worker = await idle.get()
            if worker is None and not self._live:
                idle.put_nowait(None)  # pass the wake-up on to the next request in line
            elif worker is not None and worker in self._live:
                return worker

    async def generate(self, request: ChatCompletionRequest) -> AsyncIterator[Chunk]:
        arguments, chat_handler = self._arguments(request)
        tool_calls = _ToolCallDeltas()
        async for chunk in self._run(arguments, chat_handler, kind="chat"):
            yield tool_calls.tidy(chunk) if chunk.get("choices") else chunk

    async def complete_text(self, request: TextCompletionRequest) -> AsyncIterator[Chunk]:
        """llama-cpp-python's `create_completion` on the raw prompt, in a worker like chat (cancelled per token)."""
        async for chunk in self._run(llama_cpp_text_arguments(request), None, kind="text"):
            yield chunk

    @property
    def embedding_model(self) -> str | None:
        return self.model_name if self.config.embeddings else None

    async def embed(self, texts: list[str], *, dimensions: int | None = None) -> tuple[list[list[float]], int]:
        """Mean-pooled embeddings from the tier's model, in a worker (a second context, loaded on first use)."""
        if dimensions is not None:
            raise TierRejected(f"tier {self.name!r} embeds at its model's width; dimensions is not served", status=400)
        answer: dict[str, Any] = {}
        tokens = 0
        async for chunk in self._run({"input": texts}, None, kind="embed"):
            if "data" in chunk:
                answer = chunk
            elif chunk.get("usage"):
                tokens = int(chunk["usage"]["prompt_tokens"])
        return embeddings_from(self.name, answer, count=len(texts))[0], tokens

    async def _run(self, arguments: dict[str, Any], chat_handler: str | None, *,
                   kind: Literal["chat", "text", "embed"]) -> AsyncIterator[Chunk]:
        """One request on an idle worker: its chunks, stamped with one id and the model's name, then usage."""
        worker = await self._acquire()
        job = worker.begin(next(self._request_ids), arguments, chat_handler, kind=kind)
        completion_id = ""
        text = kind == "text"
        new_id = new_text_completion_id if text else new_completion_id
        try:
            while True:
                reply = await job.replies.get()
                if isinstance(reply, Piece):
                    completion_id = completion_id or reply.chunk.get("id") or new_id()
                    yield {**reply.chunk, "id": completion_id, "model": self.model_name}
                elif isinstance(reply, Done):
                    completion_id = completion_id or new_id()
                    self._note_confidence(completion_id, reply)
                    yield self._usage_chunk(reply, completion_id, text=text)
                    return
                else:
                    why = f"its model worker died ({reply.describe()})" if isinstance(reply, Exited) else reply.message
                    if not completion_id:
                        raise TierUnavailable(f"tier {self.name!r} failed: {why}")
                    raise TierStreamBroken(f"tier {self.name!r} failed mid-answer: {why}")
        finally:
            # Synchronous on purpose: this may run in a cancelled task, where an await would be cancelled again.
            worker.cancel(job)

    # ---- the answer's confidence, for the decision log and the cascade (not part of the OpenAI answer) ---------
    def confidence(self, completion_id: str) -> AnswerConfidence | None:
        """How sure the model was of the answer with this id (its token logprobs); None when not computed
        (no token scored) or no longer kept (the last `_CONFIDENCE_KEPT` answers are)."""
        return self._confidences.get(completion_id)

    def _note_confidence(self, completion_id: str, done: Done) -> None:
        if done.confidence is None:
            return
        self._confidences[completion_id] = AnswerConfidence(*done.confidence)
        while len(self._confidences) > _CONFIDENCE_KEPT:
            self._confidences.pop(next(iter(self._confidences)))

    def _arguments(self, request: ChatCompletionRequest) -> tuple[dict[str, Any], str | None]:
        """What the worker is sent: the mapped arguments, and the chat handler that reads them (None: the model's
        own template)."""
        handler = self.config.tools_chat_format if request.uses_tools else None
        return llama_cpp_arguments(request, tool_handler=handler, tier=self.name), handler

    def _usage_chunk(self, done: Done, completion_id: str, *, text: bool) -> Chunk:
        return {
            "id": completion_id,
            "object": "text_completion" if text else "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [],
            "usage": {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
                      "total_tokens": done.prompt_tokens + done.completion_tokens},
        }


class _ToolCallDeltas:
    """OpenAI's stream shape for tool calls: id, type and name in a call's first delta only, then arguments.

    llama-cpp-python repeats them in every delta (clients that add deltas up then read the name N times) and
    adds a legacy `function_call` and null fields beside them."""

    def __init__(self) -> None:
        self._started: set[int] = set()

    def tidy(self, chunk: Chunk) -> Chunk:
        for choice in chunk.get("choices", []):
            delta = {k: v for k, v in (choice.get("delta") or {}).items() if v is not None and k != "function_call"}
            if "tool_calls" in delta:
                delta["tool_calls"] = [self._call(c) for c in delta["tool_calls"]]
            choice["delta"] = delta
        return chunk

    def _call(self, call: dict[str, Any]) -> dict[str, Any]:
        index = call.get("index", 0)
        if index in self._started:
            return {"index": index, "function": {"arguments": (call.get("function") or {}).get("arguments", "")}}
        self._started.add(index)
        return {**call, "index": index}
