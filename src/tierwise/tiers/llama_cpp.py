"""A tier that runs a GGUF model with llama.cpp on this machine: the device tier.

Each of the `max_concurrent` slots is a worker process holding its own model (tiers/llama_worker.py): llama.cpp
blocks while it computes, a `Llama` is not thread-safe, and a crash inside llama.cpp must not take the gateway
down. A worker that dies is logged, its request fails (`TierUnavailable` before the first chunk,
`TierStreamBroken` after) and a new one is loaded. A slot returns to the pool when its worker says the request
ended, never from the client's side, so a client that goes away cannot leave the tier busy.

Requests with tools go to llama-cpp-python's `chatml-function-calling` handler (`tools_chat_format`), which
knows less than the OpenAI API: the gaps are filled here (`_tool_arguments`) and its stream is reshaped into
OpenAI's tool-call deltas (`_ToolCallDeltas`). Usage::

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
from typing import TYPE_CHECKING, Any

from tierwise.errors import ConfigError
from tierwise.protocol import new_completion_id
from tierwise.tiers.base import Chunk, Tier, TierHealth, TierRejected, TierStreamBroken, TierUnavailable
from tierwise.tiers.capabilities import Capabilities
from tierwise.tiers.llama_worker import Done, Exited, Piece, WorkerFailed, WorkerProcess, WorkerSettings
from tierwise.tiers.translate import llama_cpp_arguments

if TYPE_CHECKING:
    from tierwise.config import LlamaCppTierConfig
    from tierwise.protocol import ChatCompletionRequest

log = logging.getLogger("tierwise.tiers")

STOP_TIMEOUT_S = 5.0  # how long aclose() waits for a worker to exit before killing it
_RESTART_BACKOFF_S = (0.5, 30.0)  # first and longest wait between attempts to reload a dead worker's model


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

    @property
    def model_name(self) -> str:
        return self.config.model or self.config.model_path.stem  # a name, never the path (it says where files are)

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the loaded workers (for operators, and tests that kill one)."""
        return sorted(w.pid for w in self._live if w.pid is not None)

    def default_capabilities(self) -> Capabilities:
        return Capabilities(tools=self.config.tools_chat_format is not None, response_format=True, images=False,
                            context_length=self.config.n_ctx)

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
        worker = await self._acquire()
        job = worker.begin(next(self._request_ids), arguments, chat_handler)
        tool_calls = _ToolCallDeltas()
        completion_id = ""
        try:
            while True:
                reply = await job.replies.get()
                if isinstance(reply, Piece):
                    completion_id = completion_id or reply.chunk.get("id") or new_completion_id()
                    yield tool_calls.tidy({**reply.chunk, "id": completion_id, "model": self.model_name})
                elif isinstance(reply, Done):
                    yield self._usage_chunk(reply, completion_id or new_completion_id())
                    return
                else:
                    why = f"its model worker died ({reply.describe()})" if isinstance(reply, Exited) else reply.message
                    if not completion_id:
                        raise TierUnavailable(f"tier {self.name!r} failed: {why}")
                    raise TierStreamBroken(f"tier {self.name!r} failed mid-answer: {why}")
        finally:
            # Synchronous on purpose: this may run in a cancelled task, where an await would be cancelled again.
            worker.cancel(job)

    def _arguments(self, request: ChatCompletionRequest) -> tuple[dict[str, Any], str | None]:
        arguments = llama_cpp_arguments(request)
        arguments["messages"] = [_text_content(m) for m in arguments["messages"]]
        if not request.uses_tools:  # none offered, or tool_choice "none": the model's own template, no tools
            for key in ("tools", "tool_choice", "functions", "function_call"):
                arguments.pop(key, None)
            return arguments, None
        if self.config.tools_chat_format is None:
            return arguments, None  # the config claims the model's own template renders tools
        return _tool_arguments(arguments, tier=self.name), self.config.tools_chat_format

    def _usage_chunk(self, done: Done, completion_id: str) -> Chunk:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [],
            "usage": {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
                      "total_tokens": done.prompt_tokens + done.completion_tokens},
        }


def _text_content(message: dict[str, Any]) -> dict[str, Any]:
    """A list of text parts as one string: chat templates print `content` as it is, a list included."""
    content = message.get("content")
    if isinstance(content, list):
        texts = [str(p["text"]) for p in content if isinstance(p, dict) and p.get("text") is not None]
        return {**message, "content": "\n".join(texts)}
    return message


def _tool_arguments(arguments: dict[str, Any], *, tier: str) -> dict[str, Any]:
    """Arguments for llama-cpp-python's `chatml-function-calling` handler, which knows less than the OpenAI API."""
    arguments = dict(arguments)
    if functions := arguments.pop("functions", None):  # the legacy form, as tools
        arguments.setdefault("tools", [{"type": "function", "function": f} for f in functions])
        call = arguments.pop("function_call", None)
        if call is not None and "tool_choice" not in arguments:
            arguments["tool_choice"] = call if isinstance(call, str) else {"type": "function", "function": call}
    names = [t.get("function", {}).get("name") for t in arguments["tools"]]
    choice = arguments.get("tool_choice") or "auto"  # OpenAI's default when tools are offered (the handler's: none)
    if choice == "required":  # the handler cannot force "one of several"; with one tool, it is that tool
        if len(names) != 1:
            raise TierRejected(f"tier {tier!r} cannot honour tool_choice 'required' with {len(names)} tools; "
                               "name the tool to call in tool_choice", status=400)
        choice = {"type": "function", "function": {"name": names[0]}}
    if isinstance(choice, dict) and (choice.get("function") or {}).get("name") not in names:
        raise TierRejected(f"tool_choice names a function that is not among the tools ({names})", status=400)
    if not isinstance(choice, dict) and choice != "auto":
        raise TierRejected(f"unknown tool_choice {choice!r}", status=400)
    messages = _tool_results_as_user_turns(arguments["messages"])
    if not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": ""})  # the handler lists the tools in the system turn
    return {**arguments, "messages": messages, "tool_choice": choice}


def _tool_results_as_user_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The handler's template drops `tool` turns; as user turns the model still sees each result."""
    names: dict[str, str] = {}
    out = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[call.get("id", "")] = call.get("function", {}).get("name", "")
        if message.get("role") in {"tool", "function"}:
            name = message.get("name") or names.get(message.get("tool_call_id", ""), "") or "the tool"
            message = {"role": "user", "content": f"Result of {name}: {message.get('content') or ''}"}
        out.append(message)
    return out


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
