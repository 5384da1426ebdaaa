"""The model server process: REST (uvicorn) and gRPC (grpc.aio) on one event loop.

Start-up loads the initial model versions before the ports open, as
`tensorflow_model_server` does, then prints one line naming the bound
addresses (ports 0 pick free ports, handy for tests):

    tft-serve: ready REST http://127.0.0.1:8501 gRPC 127.0.0.1:8500

SIGTERM or SIGINT stops accepting connections, lets requests in flight finish
(up to `grace_seconds`), then exits.
"""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys

import grpc
import uvicorn

from serving.server import grpc_service, rest
from serving.server.manager import ModelManager
from serving.server.service import Limits, ServingCore

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """How to run the server.

    Args:
        models: list of `config.ModelSpec`.
        host: str, address both ports bind (default loopback only).
        rest_port: int, 0 picks a free port; None disables REST.
        grpc_port: int, 0 picks a free port; None disables gRPC.
        limits: `service.Limits`.
        batching: `batcher.BatchingOptions` or None.
        num_threads: int, threads running models (default: CPU count).
        poll_seconds: float, seconds between scans for new versions.
        grace_seconds: float, time given to requests in flight at shutdown.
    """

    models: list
    host: str = "127.0.0.1"
    rest_port: int = 8501
    grpc_port: int = 8500
    limits: Limits = Limits()
    batching: object = None
    num_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    poll_seconds: float = 1.0
    grace_seconds: float = 30.0

    def __post_init__(self):
        if not self.models:
            raise ValueError("ServerOptions.models is empty: give at least one model.")
        if self.rest_port is None and self.grpc_port is None:
            raise ValueError("Both rest_port and grpc_port are None: nothing would serve.")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1; got {self.num_threads}.")


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: `serve()` owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def serve(options, ready=None):
    """Runs the server until SIGTERM / SIGINT, or until `ready`'s stop event is set.

    Args:
        options: `ServerOptions`.
        ready: optional callable(rest_address, grpc_address, stop_event) called
            once both servers listen; addresses are "host:port" or None.
    """
    manager = ModelManager(options.models, poll_seconds=options.poll_seconds)
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=options.num_threads, thread_name_prefix="inference"
    )
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, manager.start)
    core = ServingCore(manager, executor, options.limits, options.batching)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)

    grpc_server, grpc_address = None, None
    if options.grpc_port is not None:
        max_bytes = options.limits.max_body_bytes
        grpc_server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_bytes),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ]
        )
        grpc_service.add_servicers(grpc_server, core)
        port = grpc_server.add_insecure_port(f"{_bracket(options.host)}:{options.grpc_port}")
        if port == 0:
            raise OSError(f"Could not bind gRPC to {options.host}:{options.grpc_port}")
        await grpc_server.start()
        grpc_address = f"{options.host}:{port}"

    rest_server, rest_task, rest_address, sock = None, None, None, None
    if options.rest_port is not None:
        sock = _bind(options.host, options.rest_port)
        config = uvicorn.Config(
            rest.create_app(core),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=options.grace_seconds,
            timeout_keep_alive=30,
        )
        rest_server = _UvicornServer(config)
        rest_task = asyncio.ensure_future(rest_server.serve(sockets=[sock]))
        while not rest_server.started and not rest_task.done():
            await asyncio.sleep(0.01)
        if rest_task.done():
            rest_task.result()  # Re-raises the start-up failure.
        rest_address = f"{options.host}:{sock.getsockname()[1]}"

    print(
        f"tft-serve: ready REST {'http://' + rest_address if rest_address else 'off'} "
        f"gRPC {grpc_address or 'off'}",
        flush=True,
    )
    if ready is not None:
        ready(rest_address, grpc_address, stop)

    await stop.wait()
    logger.info("Shutting down: finishing requests in flight")
    shutdowns = []
    if rest_server is not None:
        rest_server.should_exit = True
        shutdowns.append(rest_task)
    if grpc_server is not None:
        shutdowns.append(grpc_server.stop(options.grace_seconds))
    await asyncio.gather(*shutdowns)
    manager.stop()
    executor.shutdown(wait=True)
    print("tft-serve: stopped", flush=True)


def _bracket(host):
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _bind(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections; without it
    # Nagle's algorithm holds each response body until the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as error:
        sock.close()
        raise OSError(f"Could not bind REST to {host}:{port}: {error}") from error
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def run(options):
    """Blocking entry point: runs `serve(options)` in a fresh event loop."""
    try:
        asyncio.run(serve(options))
    except OSError as error:
        print(f"tft-serve: {error}", file=sys.stderr)
        raise SystemExit(1) from error
