"""The device tier's worker process: one llama.cpp model answering one request at a time over a pipe.

This module owns the worker's side: its entry point (`serve`), loading the model, answering a request, the guard
that runs around every sampled token, and the messages both sides send over the pipe (`WorkerSettings`,
`Generate`, `Cancel`, `Close` down; `Ready`, `Piece`, `Done`, `Failed` up). A request (`Generate.kind`) is a chat
completion or a legacy text completion, streamed either way, or embeddings, from a second context on the same file
loaded on the first such request (mean-pooled; the weights are memory-mapped, so shared). The parent's handle on a
worker is `WorkerProcess` in tiers/llama_process.py; this module never imports it, and imports nothing heavy at
the top (llama_cpp is imported inside `_load`), so a spawned worker starts quickly.

A crash inside llama.cpp (SIGSEGV, SIGILL on a CPU feature the build assumed, an abort) ends this process, not the
gateway. The worker checks its pipe before every token it samples, so a `Cancel` stops a request within one
token, and it ends every request with `Done` or `Failed`: that reply, not the client's generator, hands the
slot back to the pool. Usage, as a process's target (what `WorkerProcess.launch` does)::

    multiprocessing.get_context("spawn").Process(target=serve, args=(child_conn, settings), daemon=True).start()
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tierwise.errors import GenerationCancelled, TokenLimitReached

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from llama_cpp import Llama


@dataclass(frozen=True)
class WorkerSettings:
    """What the worker needs to load its model (plain values: they cross the process boundary by pickle)."""

    model_path: str
    n_ctx: int
    n_threads: int | None
    n_gpu_layers: int
    chat_format: str | None
    logits_all: bool
    seed: int | None


@dataclass(frozen=True)
class Generate:  # parent → worker
    request_id: int
    arguments: dict[str, Any]  # for `create_chat_completion`, the chat handler named below, or `create_completion`
    chat_handler: str | None = None
    # "text": a legacy text completion of `arguments["prompt"]` (no chat template); "embed": `arguments["input"]`
    kind: Literal["chat", "text", "embed"] = "chat"


@dataclass(frozen=True)
class Cancel:  # parent → worker; ignored unless that request is still running
    request_id: int


@dataclass(frozen=True)
class Close:  # parent → worker
    pass


@dataclass(frozen=True)
class Ready:  # worker → parent: the model is loaded
    pass


@dataclass(frozen=True)
class Piece:  # worker → parent: one chat.completion.chunk (text_completion, or the whole embedding answer)
    request_id: int
    chunk: dict[str, Any]


@dataclass(frozen=True)
class Done:  # worker → parent: the request ended (finished or cancelled); the worker is free
    request_id: int
    prompt_tokens: int
    completion_tokens: int
    # (mean logprob, min logprob, mean entropy in nats, tokens scored) of the sampled tokens; None when no token
    # was scored (see `token_confidence`)
    confidence: tuple[float, float, float, int] | None = None


@dataclass(frozen=True)
class Failed:  # worker → parent: llama.cpp raised; the worker is free
    request_id: int | None  # None: the model did not load
    message: str


class _Guard:
    """Runs around each token the model samples: stops cancelled requests and counts what was computed."""

    def __init__(self, conn: Connection, request_id: int) -> None:
        self.conn = conn
        self.request_id = request_id
        self.prompt_tokens: int | None = None
        self.completion_tokens = 0
        self.limit: int | None = None
        self.closing = False
        self.logprobs: list[float] = []  # of each sampled token, and the entropy there: `note_confidence`
        self.entropies: list[float] = []

    def before_sample(self, model: Llama) -> None:
        if self.prompt_tokens is None:
            self.prompt_tokens = model.n_tokens  # the evaluated prompt, as llama.cpp tokenised it
        if self.limit is not None and self.completion_tokens >= self.limit:
            raise TokenLimitReached
        try:
            while self.conn.poll():
                message = self.conn.recv()
                self.closing = self.closing or isinstance(message, Close)
                if self.closing or (isinstance(message, Cancel) and message.request_id == self.request_id):
                    raise GenerationCancelled
        except (EOFError, OSError):  # the parent is gone: nobody reads the answer
            self.closing = True
            raise GenerationCancelled from None

    def after_sample(self, *, ends_turn: bool) -> None:
        # Every token generated for the request, the tool handler's internal steps included; the end-of-turn
        # token is left out, as llama-cpp-python leaves it out of its own usage.
        if not ends_turn:
            self.completion_tokens += 1

    # ---- the answer's confidence (the decision log and the cascade read it; see answer_signals.py) ----------
    def note_confidence(self, logits: Any, token: int) -> None:
        logprob, entropy = token_confidence(logits, token)
        self.logprobs.append(logprob)
        self.entropies.append(entropy)

    def confidence(self) -> tuple[float, float, float, int] | None:
        if not self.logprobs:
            return None
        n = len(self.logprobs)
        return sum(self.logprobs) / n, min(self.logprobs), sum(self.entropies) / n, n


def token_confidence(logits: Any, token: int) -> tuple[float, float]:
    """(log p(token), entropy in nats) of the model's own next-token distribution: the raw logits at
    temperature 1, whatever the request's sampling settings, so answers are comparable. O(vocabulary) numpy."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max()
    logp = z - np.log(np.exp(z).sum())
    return float(logp[token]), float(-(np.exp(logp) * logp).sum())


def serve(conn: Connection, settings: WorkerSettings) -> None:
    """The worker process's entry point: load the model, say `Ready` (or `Failed`), answer until `Close`."""
    try:
        model = _load(settings)
    except Exception as err:  # reported to the parent, which raises ConfigError from start()
        conn.send(Failed(None, f"{type(err).__name__}: {err}"))
        return
    embedder: Llama | None = None
    try:
        conn.send(Ready())
        while True:
            message = conn.recv()
            if isinstance(message, Generate) and message.kind == "embed":
                embedder = _embed(embedder, settings, conn, message)
            elif isinstance(message, Close) or (isinstance(message, Generate) and not _answer(model, conn, message)):
                return
    except (EOFError, OSError):  # the parent is gone: nobody to answer
        return
    finally:
        model.close()
        if embedder is not None:
            embedder.close()


def _embed(embedder: Llama | None, settings: WorkerSettings, conn: Connection, job: Generate) -> Llama | None:
    """Answer an embedding request (one call: not cancellable, bounded by its input); the embedding context is
    loaded on first use and kept."""
    try:
        if embedder is None:
            from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

            # The whole input in one micro-batch: a pooled embedding is computed over the sequence at once.
            embedder = Llama(model_path=settings.model_path, embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN,
                             n_ctx=settings.n_ctx, n_batch=settings.n_ctx, n_ubatch=settings.n_ctx,
                             n_threads=settings.n_threads, n_gpu_layers=settings.n_gpu_layers, verbose=False)
        answer = embedder.create_embedding(job.arguments["input"])
    except Exception as err:  # an input over the context, or a model that cannot load as an embedder
        conn.send(Failed(job.request_id, f"{type(err).__name__}: {err}"))
        return embedder
    conn.send(Piece(job.request_id, _to_plain(answer)))
    conn.send(Done(job.request_id, int(answer["usage"]["prompt_tokens"]), 0))
    return embedder


def _load(settings: WorkerSettings) -> Llama:
    import numpy as np
    from llama_cpp import Llama, llama_vocab_is_eog

    class GuardedLlama(Llama):
        # `sample` runs once per generated token on every path (plain chat, grammars, every step of the tool
        # handler), unlike a logits processor, which llama-cpp-python 0.3 runs through an untested ctypes hook.
        guard: _Guard | None = None

        def sample(self, *args: Any, **kwargs: Any) -> int:
            if self.guard is not None:
                self.guard.before_sample(self)
            token = int(super().sample(*args, **kwargs))
            if self.guard is not None:
                ends_turn = llama_vocab_is_eog(self._model.vocab, token)
                self.guard.after_sample(ends_turn=ends_turn)
                if not ends_turn:  # the logits the token was sampled from: the last position's, kept either way
                    logits = np.ctypeslib.as_array(self._ctx.get_logits_ith(-1), shape=(self._n_vocab,))
                    self.guard.note_confidence(logits, token)
            return token

    return GuardedLlama(
        model_path=settings.model_path,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_gpu_layers=settings.n_gpu_layers,
        chat_format=settings.chat_format,
        logits_all=settings.logits_all,
        seed=settings.seed if settings.seed is not None else 0xFFFFFFFF,
        verbose=False,
    )


def _answer(model: Llama, conn: Connection, job: Generate) -> bool:
    """Serve one request, always ending it with `Done` or `Failed`; False when the worker should exit."""
    guard = _Guard(conn, job.request_id)
    model.guard = guard  # type: ignore[attr-defined]
    try:
        chunks = model.create_completion(**job.arguments) if job.kind == "text" else _chunks(
            model, dict(job.arguments), job.chat_handler, guard)
        for chunk in chunks:  # type: ignore[union-attr]
            conn.send(Piece(job.request_id, _to_plain(chunk)))
    except GenerationCancelled:
        pass  # the parent stopped listening; Done below still frees the slot
    except Exception as err:  # llama.cpp refused (e.g. the prompt exceeds the context): the request fails
        conn.send(Failed(job.request_id, f"{type(err).__name__}: {err}"))
        return not guard.closing
    finally:
        model.guard = None  # type: ignore[attr-defined]
    conn.send(Done(job.request_id, guard.prompt_tokens or 0, guard.completion_tokens, guard.confidence()))
    return not guard.closing


def _chunks(model: Llama, arguments: dict[str, Any], chat_handler: str | None, guard: _Guard) -> Iterator[Any]:
    if chat_handler is None:
        yield from model.create_chat_completion(**arguments)
        return
    from llama_cpp import llama_chat_format

    handler = llama_chat_format.get_chat_completion_handler(chat_handler)
    if (seed := arguments.pop("seed", None)) is not None:
        model.set_seed(seed)  # the tool handler drops `seed`; its completions draw from the model's
    if arguments.get("tool_choice") != "auto":
        yield from handler(llama=model, **arguments)
        return
    # "auto": the handler cannot stream a tool call, and it runs unbounded (max_tokens=None) while deciding.
    guard.limit = arguments.get("max_tokens")
    try:
        answer: dict[str, Any] = handler(llama=model, **{**arguments, "stream": False})  # type: ignore[assignment]
    except TokenLimitReached:
        yield _chunk({}, finish_reason="length")
        return
    finally:
        guard.limit = None
    calls = answer["choices"][0]["message"].get("tool_calls")
    if calls:
        yield _chunk({"role": "assistant", "content": None})
        for index, call in enumerate(calls):
            yield _chunk({"tool_calls": [{"index": index, **call}]})
        yield _chunk({}, finish_reason="tool_calls")
        return
    # It chose to answer in words, but llama-cpp-python 0.3.36 writes that answer under its follow-up grammar
    # (only a tool name or the end of the turn): it comes back empty. The words are written as a plain turn.
    yield from handler(llama=model, **{**arguments, "tool_choice": "none"})


def _chunk(delta: dict[str, Any], *, finish_reason: str | None = None) -> dict[str, Any]:
    # `id` and `model` are stamped by the parent, like on every other chunk.
    return {"id": "", "object": "chat.completion.chunk", "created": int(time.time()), "model": "",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}


def _to_plain(value: Any) -> Any:
    """llama.cpp hands back numpy floats in logprobs; JSON needs plain Python numbers."""
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()
    return value
