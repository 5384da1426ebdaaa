"""`tft-serve` in a child process: start it on free loopback ports, wait until it is ready.

Used by the demo, the serving benchmark and the tests, which all need a real server process.
"""

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time

READY = re.compile(r"tft-serve: ready REST (\S+) gRPC (\S+)")


class ServerProcess:
    """`python -m serving.server` in a subprocess, on loopback with free ports.

    Everything the server prints is collected in `output` (a reader thread keeps the pipe from
    filling up while the server runs).

    Args:
        args: list of str, command-line arguments (the ports are added: 0, a free one).
        timeout: float, default 120. Seconds to wait for the "ready" line.
        cwd: str or None. Working folder of the server.

    Raises:
        RuntimeError: the server exited or did not get ready in time; the message holds its
            output.
    """

    def __init__(self, args, timeout=120, cwd=None):
        command = [sys.executable, "-m", "serving.server", "--rest-port", "0", "--grpc-port",
                   "0", "--log-level", "WARNING", *args]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.output = []
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if line is None:
                self.process.kill()
                raise RuntimeError("tft-serve did not start:\n" + "".join(self.output))
            match = READY.search(line)
            if match:
                self.rest_url, self.grpc_target = match.group(1), match.group(2)
                break
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _readline(self, deadline):
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if ready:
                line = self.process.stdout.readline()
                if not line:
                    return None
                self.output.append(line)
                return line
            if self.process.poll() is not None:
                return None
        return None

    def _collect(self):
        for line in self.process.stdout:
            self.output.append(line)

    def url(self, path):
        return self.rest_url + path

    def terminate(self, timeout=60):
        """Sends SIGTERM and waits (kills after `timeout` s); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        return self.process.returncode
