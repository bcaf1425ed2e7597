"""A Python client for `grpo-roc serve`: GRPO-RoC's selection from a Python trainer, in one long-lived Node process.

Standard library only, Python 3.9+. One file: copy it, or put the package's `python/` folder on `sys.path`
(`node_modules/grpo-roc/python` in a project that installed grpo-roc).

    from grpo_roc_client import GrpoRocServer

    with GrpoRocServer() as server:  # starts `npx --no-install grpo-roc serve` once
        for step in range(steps):
            rollouts = [{"group_id": prompt, "reward": r, "tool_calls": calls, "answers": a, "turns": t}, ...]
            response = server.pipeline(rollouts, keep=16, seed=step, kept_only=True)
            for record in response.records:  # what to train on: record["line"] - 1 indexes `rollouts`
                ...

Each call sends one request line and reads its response: the records the `grpo-roc pipeline` (or `resample`,
`advantages`, `penalties`) command writes for those rollouts, one per rollout in input order (only the kept ones
with `kept_only=True`), and the summary the command's `--summary` writes. Options are the command's flags in
snake_case (`keep`, `seed`, `mode`, `preset`, `keep_equal_rewards`, `failure_kinds`, `kept_only`, ...); an option
the command does not have is refused by the server, with the closest one it has. Rollout fields may be written in
snake_case (`group_id`, `tool_calls`, `format_ok`).

A request the server refuses (a bad rollout, a bad option) raises GrpoRocRequestError, with the server's message
and issues (`rollouts[3].tool_calls[0].outcome: ...`), and the server goes on serving. A server that is gone (it
could not start, was killed, or broke the protocol) raises GrpoRocServerError with its exit code and the end of its
stderr. One server serves one request at a time: use one per thread.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from typing import IO, Any, Iterable, Mapping, Sequence

__all__ = ["GrpoRocServer", "Response", "GrpoRocError", "GrpoRocRequestError", "GrpoRocServerError"]

DEFAULT_CLI = "npx --no-install grpo-roc"
"""How the grpo-roc command is found when no command is given: GRPO_ROC_CLI, else this (split like a shell)."""

_STDERR_TAIL = 4000
"""How much of the server's stderr an error quotes (its end)."""


class GrpoRocError(Exception):
    """Anything this client raises about the server or a request."""


class GrpoRocRequestError(GrpoRocError):
    """The server refused a request: `message` says why, `issues` lists each problem as {"path", "message"}.

    The server is still serving; the next request is unaffected.
    """

    def __init__(self, request_id: int, message: str, issues: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.message = message
        self.issues = issues


class GrpoRocServerError(GrpoRocError):
    """The server is gone or broke the protocol: `returncode` is its exit code (None while it runs), `stderr` the
    end of what it wrote there. Start a new GrpoRocServer to go on."""

    def __init__(self, message: str, returncode: int | None, stderr: str) -> None:
        detail = f"{message} (exit code {returncode})" if returncode is not None else message
        super().__init__(f"{detail}:\n{stderr.strip()}" if stderr.strip() else detail)
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class Response:
    """The answer to one request."""

    records: list[dict[str, Any]]
    """The command's records, in the order of the rollouts; each `line` is the rollout's 1-based position."""
    summary: dict[str, Any]
    """The figures `--summary` writes: rollouts, kept, dropped, groups, positives, penalties of kept and dropped."""
    elapsed_ms: float
    """The server's time on the request, from reading its line to its last record."""

    @property
    def kept(self) -> list[dict[str, Any]]:
        """The records of the rollouts to train on."""
        return [record for record in self.records if not record["dropped"]]


class GrpoRocServer:
    """One `grpo-roc serve` process, started on construction and ended by `close()` (or the `with` block's end)."""

    def __init__(
        self,
        command: Sequence[str] | str | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Starts the server.

        `command` is the whole command line to run, as a list or a string split like a shell would (for example
        `["node", "/path/to/grpo-roc/dist/cli.js", "serve", "--max-request-bytes", "67108864"]`). By default it is
        the environment variable GRPO_ROC_CLI (the grpo-roc command, default `npx --no-install grpo-roc`) followed
        by `serve`.
        """
        if command is None:
            argv = shlex.split(os.environ.get("GRPO_ROC_CLI", DEFAULT_CLI)) + ["serve"]
        elif isinstance(command, str):
            argv = shlex.split(command)
        else:
            argv = list(command)
        self.command = argv
        self._next_id = 1
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=cwd,
                env=None if env is None else dict(env),
                bufsize=1 << 20,
            )
        except OSError as error:
            self._stderr.close()
            raise GrpoRocServerError(f"cannot start {shlex.join(argv)}: {error}", None, "") from error

    def __enter__(self) -> GrpoRocServer:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self.close()
        else:
            # An error is on its way out already: end the server without raising over it.
            self._terminate()

    def pipeline(
        self,
        rollouts: Iterable[Mapping[str, Any]],
        keep: int | None = None,
        seed: int | str | None = None,
        **options: Any,
    ) -> Response:
        """Resample-on-Correct per group, then the advantages of the kept rollouts: `grpo-roc pipeline`'s records,
        each with `advantage` when kept. `keep` is G; `seed` is required in paper mode (pass the training step)."""
        return self.request("pipeline", rollouts, {"keep": keep, "seed": seed, **options})

    def resample(
        self,
        rollouts: Iterable[Mapping[str, Any]],
        keep: int | None = None,
        seed: int | str | None = None,
        **options: Any,
    ) -> Response:
        """Resample-on-Correct per group: `grpo-roc resample`'s records, kept or dropped with `reasonCode`."""
        return self.request("resample", rollouts, {"keep": keep, "seed": seed, **options})

    def advantages(self, rollouts: Iterable[Mapping[str, Any]], **options: Any) -> Response:
        """Group-relative advantages of every rollout, no resampling: `grpo-roc advantages`'s records."""
        return self.request("advantages", rollouts, options)

    def penalties(self, rollouts: Iterable[Mapping[str, Any]], **options: Any) -> Response:
        """p_err, p_format and p_total of every rollout: `grpo-roc penalties`'s records."""
        return self.request("penalties", rollouts, options)

    def request(self, command: str, rollouts: Iterable[Mapping[str, Any]], options: Mapping[str, Any]) -> Response:
        """Sends one request and reads its response. Options whose value is None are left out (their default).

        Raises GrpoRocRequestError when the server refuses the request, GrpoRocServerError when the server is gone,
        and ValueError (from json) for a value JSON cannot carry, such as a NaN reward: nothing is sent then.
        """
        request_id = self._next_id
        self._next_id += 1
        line = json.dumps(
            {
                "id": request_id,
                "command": command,
                "options": {key: value for key, value in options.items() if value is not None},
                "rollouts": rollouts if isinstance(rollouts, list) else list(rollouts),
            },
            separators=(",", ":"),
            allow_nan=False,
        ).encode("ascii")
        self._send(line + b"\n")
        return self._receive(request_id)

    def close(self, timeout: float = 30.0) -> int:
        """Ends the server (end of its input) and waits for it; its exit code, 0. Raises GrpoRocServerError when it
        exits otherwise or does not exit within `timeout` seconds (it is then killed)."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            try:
                self._process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            raise self._gone(f"grpo-roc serve did not exit within {timeout} s of the end of its input; killed")
        finally:
            self._process.stdout.close()  # type: ignore[union-attr]
        if code != 0:
            raise self._gone("grpo-roc serve failed")
        self._stderr.close()
        return code

    def _terminate(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._stderr):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def _send(self, data: bytes) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.closed or self._process.poll() is not None:
            raise self._gone("grpo-roc serve is not running")
        try:
            stdin.write(data)
            stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise self._gone(f"grpo-roc serve is gone: {error}") from error

    def _receive(self, request_id: int) -> Response:
        """Reads the response lines of `request_id`. Record lines are cut out of their envelope as bytes and parsed
        together, in one json.loads: a call per line would cost more than the server's work."""
        stdout = self._process.stdout
        assert stdout is not None
        head = b'{"id":%d,"type":"' % request_id
        record_head = head + b'record","record":'
        records: list[bytes] = []
        while True:
            line = stdout.readline()
            if not line:
                try:
                    self._process.wait(10)
                except subprocess.TimeoutExpired:
                    pass
                raise self._gone("grpo-roc serve ended before it answered")
            if line.startswith(record_head) and line.endswith(b"}\n"):
                records.append(line[len(record_head) : -2])
                continue
            if not line.startswith(head):
                raise self._broken(f"grpo-roc serve answered out of turn: {line[:200]!r}")
            message = json.loads(line)
            if message["type"] == "summary":
                return Response(
                    records=json.loads(b"[" + b",".join(records) + b"]"),
                    summary=message["summary"],
                    elapsed_ms=message["elapsedMs"],
                )
            if message["type"] == "error":
                error = message["error"]
                raise GrpoRocRequestError(request_id, error["message"], error["issues"])
            raise self._broken(f"grpo-roc serve sent an unknown response line: {line[:200]!r}")

    def _broken(self, message: str) -> GrpoRocServerError:
        """A server that broke the protocol: it is ended, since what it sends next cannot be trusted."""
        error = self._gone(message)
        self._terminate()
        return error

    def _gone(self, message: str) -> GrpoRocServerError:
        return GrpoRocServerError(message, self._process.poll(), self._stderr_tail())

    def _stderr_tail(self) -> str:
        try:
            self._stderr.flush()
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            return self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
