"""A tier whose server tierwise runs itself: llama-cpp-python's OpenAI server on a GGUF file, in its own process.

`start()` launches `python -m llama_cpp.server` on 127.0.0.1, waits until `GET /v1/models` answers, and from then
on the tier is an ordinary HTTP tier in the `llama_cpp` dialect; `aclose()` stops the process (SIGTERM, then
SIGKILL). The server is started with `--interrupt_requests false`: by default it ends a running stream early
whenever another request arrives, which cut answers short. Its stderr goes to tierwise's log at DEBUG (it prints
timings for every request); the last lines are kept and logged as an error if the server exits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import sys
import time
from typing import TYPE_CHECKING

import httpx

from tierwise.errors import ConfigError, TierwiseError
from tierwise.ports import free_port
from tierwise.tiers.base import TierHealth
from tierwise.tiers.openai_http import OpenAIHTTPTier

if TYPE_CHECKING:
    from tierwise.config import LlamaCppServerTierConfig

log = logging.getLogger("tierwise.tiers")
_STOP_TIMEOUT_S = 10.0
_KEPT_STDERR_LINES = 20


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, ask for SIGTERM when the gateway dies, so a killed gateway leaves
    no server behind (elsewhere the child outlives a killed gateway; a clean stop always ends it)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class LlamaCppServerTier(OpenAIHTTPTier):
    """llama.cpp's OpenAI server as a child process of the gateway."""

    config: LlamaCppServerTierConfig  # type: ignore[assignment]

    def __init__(self, config: LlamaCppServerTierConfig) -> None:
        super().__init__(config)  # type: ignore[arg-type]
        self._process: asyncio.subprocess.Process | None = None
        self._port = config.port
        self._stderr_task: asyncio.Task[None] | None = None
        self._last_stderr: collections.deque[str] = collections.deque(maxlen=_KEPT_STDERR_LINES)

    @property
    def model_name(self) -> str:
        return self.config.model or self.config.model_path.name.removesuffix(".gguf")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def command(self) -> list[str]:
        cfg = self.config
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(cfg.model_path),
            "--model_alias", self.model_name, "--host", "127.0.0.1", "--port", str(self._port),
            "--n_ctx", str(cfg.n_ctx), "--interrupt_requests", "false",
        ]
        if cfg.n_threads is not None:
            command += ["--n_threads", str(cfg.n_threads)]
        return [*command, *cfg.extra_args]

    async def start(self) -> None:
        cfg = self.config
        if not cfg.model_path.is_file():
            raise ConfigError(f"tier {self.name!r}: model_path {cfg.model_path} does not exist")
        self._port = cfg.port or free_port()
        await self._launch()
        await super().start()
        await self._learn_prompt_overhead()

    async def _learn_prompt_overhead(self) -> None:
        """One tiny answer at start, so that even the first streams' estimated usage counts the chat template
        (this server reports no usage in streams)."""
        from tierwise.protocol import ChatCompletionRequest

        probe = ChatCompletionRequest.model_validate(
            {"model": self.name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        )
        try:
            async for _ in self.generate(probe):
                pass
        except TierwiseError as err:  # serving does not depend on it: estimates are only less exact
            log.warning("tier %s: could not measure the chat template's tokens: %s", self.name, err.message)

    async def _launch(self) -> None:
        cfg = self.config
        self._process = await asyncio.create_subprocess_exec(
            *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent,
        )
        self._stderr_task = asyncio.create_task(self._forward_stderr(), name=f"llama-server-{self.name}-stderr")
        log.info("tier %s: started llama.cpp server (pid %d) on port %d", self.name, self._process.pid, self._port)
        try:
            await self._wait_ready(cfg.startup_timeout_s)
        except BaseException:
            await self._stop()
            raise

    async def _wait_ready(self, timeout_s: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process.returncode is not None:
                    raise ConfigError(
                        f"tier {self.name!r}: the llama.cpp server exited with {self._process.returncode} while "
                        "starting; its last output:\n  " + "\n  ".join(self._last_stderr)
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base_url}/models")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise ConfigError(f"tier {self.name!r}: the llama.cpp server did not answer within {timeout_s:g} s")

    async def _forward_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        process = self._process
        async for line in process.stderr:  # type: ignore[union-attr]
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self._last_stderr.append(text)
                log.debug("tier %s (llama.cpp server): %s", self.name, text)
        returncode = await process.wait()
        if self._process is process:  # not stopped by us: it died
            log.error("tier %s: the llama.cpp server exited with %s; its last output:\n  %s", self.name, returncode,
                      "\n  ".join(self._last_stderr))

    async def health(self) -> TierHealth:
        """Probes the server; one that died is started again (the probe reports it down until it answers)."""
        if self._client is None:
            return TierHealth(False, "not started")
        if self._process is None or self._process.returncode is not None:
            code = None if self._process is None else self._process.returncode
            try:
                await self._launch()
            except ConfigError as err:
                return TierHealth(False, f"server process exited with {code}; restart failed: {err}")
            log.warning("tier %s: restarted the llama.cpp server after it exited with %s", self.name, code)
            return TierHealth(False, f"server process exited with {code}; restarted")
        return await super().health()

    async def aclose(self) -> None:
        await super().aclose()
        await self._stop()

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
            self._stderr_task = None
