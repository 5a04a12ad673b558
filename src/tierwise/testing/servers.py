"""Run an ASGI app or a subprocess server on 127.0.0.1 for tests and benchmarks, and stop it afterwards."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from tierwise.ports import free_port as free_port  # re-exported: tests and benches take it from here


@contextlib.contextmanager
def serve_in_thread(app: Any, *, port: int | None = None, startup_timeout_s: float = 30.0) -> Iterator[str]:
    """Serve `app` with uvicorn in a background thread; yields its base URL (http://127.0.0.1:PORT)."""
    import uvicorn

    port = port or free_port()
    # The plain asyncio loop, not uvloop: uvloop refuses to close a loop that still has handles (EBUSY) and warns
    # about transports still open at shutdown, which a test that kills backends mid-request can leave behind.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            timeout_keep_alive=30, loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"server on port {port} failed to start")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"server on port {port} did not start in {startup_timeout_s} s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until_ready(url: str, *, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers 200 (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server process exited with {process.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


def start_process(
    command: list[str], ready_url: str, *, timeout_s: float = 60, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process and wait until `ready_url` answers 200; stopped again if it never does."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_until_ready(ready_url, timeout_s=timeout_s, process=process)
    except Exception:
        stop_process(process)
        raise
    return process


def start_llama_server(model_path: str, *, port: int, extra_args: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1 (needs the `device` extra)."""
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", model_path, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "1024", "--logits_all", "true", *extra_args,
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_process(process: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is not None:
        process.stderr.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far (Linux /proc), without its children: what a server itself cost."""
    import os
    from pathlib import Path

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc): a server's workers, a gateway's managed servers."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found
