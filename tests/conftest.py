"""Shared fixtures: a tiny real GGUF model, llama.cpp's OpenAI server on it, stub backends, a running gateway."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tierwise.config import Settings, settings_from_dict
from tierwise.gateway.app import create_app
from tierwise.testing.servers import free_port, serve_in_thread, start_llama_server, stop_process, wait_until_ready
from tierwise.testing.stub_backend import StubBehavior, create_stub_app
from tierwise.testing.tiny_gguf import write_tiny_gguf

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


_sdk_clients: list[Any] = []


def sdk(url: str, *, api_key: str = "none", timeout: float = 60, **kwargs: Any) -> Any:
    """The stock openai SDK's client on a gateway URL; closed after the test (a client left to the garbage
    collector warns about its pooled sockets, which the warnings-as-errors setting turns into a failure)."""
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=timeout, **kwargs)
    _sdk_clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    while _sdk_clients:
        _sdk_clients.pop().close()


def needs_llama_cpp() -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (the 'device' extra)")


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-llama.gguf", seed=0)


@pytest.fixture(scope="session")
def llama_server(tiny_gguf: Path) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the tiny model; yields its /v1 base URL."""
    needs_llama_cpp()
    port = free_port()
    process = start_llama_server(str(tiny_gguf), port=port)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/v1/models", timeout_s=60, process=process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process(process)


@pytest.fixture
def stub_backend() -> Iterator[tuple[str, StubBehavior]]:
    """A stub OpenAI-compatible backend; yields (base URL ending in /v1, its mutable behavior)."""
    behavior = StubBehavior()
    with serve_in_thread(create_stub_app(behavior)) as url:
        yield f"{url}/v1", behavior


def openai_tier(name: str, base_url: str, *, location: str = "edge", **extra: Any) -> dict[str, Any]:
    return {"name": name, "location": location, "backend": "openai", "base_url": base_url, "model": "m",
            "retries": 0, "read_timeout_s": 5, **extra}


def llama_tier(name: str, path: Path, **extra: Any) -> dict[str, Any]:
    return {"name": name, "location": "device", "backend": "llama_cpp", "model_path": str(path), "n_ctx": 1024,
            **extra}


@pytest.fixture
def run_gateway() -> Iterator[Callable[[dict[str, Any]], str]]:
    """Start a gateway for a config dict; returns its base URL. Every gateway started is stopped at teardown."""
    stack = contextlib.ExitStack()

    def start(config: dict[str, Any]) -> str:
        settings: Settings = settings_from_dict(config)
        return stack.enter_context(serve_in_thread(create_app(settings)))

    with stack:
        yield start
