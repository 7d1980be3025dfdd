"""The one place that starts processes: locally, or on a host over SSH (fabric).

Every command is an argv list. It is quoted once, with ``shlex.join``, only when it crosses the SSH
boundary. Exit codes are interpreted here and nowhere else:

* a transport failure (paramiko/socket errors, a channel that closed without an exit status, or exit
  255 from the ``ssh`` client itself) raises :class:`TransportError`, which callers may retry;
* any other unexpected exit code raises :class:`CommandError` carrying the masked command, the exit
  code and the tail of stderr;
* a command that outlives its timeout raises :class:`CommandTimeout`.

Secrets registered with the executor (or passed per call) are replaced by ``******`` in everything
that is logged or raised. Dry-run mode logs each command and runs nothing, except probes marked
``read_only`` — plans must be computed from real state even in a dry run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tasks.fields import Port

MASK = "******"
STDERR_TAIL_LINES = 15


class LocalTarget(BaseModel):
    """This machine."""

    model_config = ConfigDict(frozen=True)

    name: str = Field("localhost", description="Display name used in logs.")

    @property
    def key(self) -> str:
        return "local"


class SshAccess(BaseModel):
    """How to log in to a host over SSH: what a user writes for each host of an inventory."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Node name (the host's hostname), used in logs and reports.")
    address: str = Field(description="IP address or DNS name to connect to.")
    port: Port = Field(22, description="SSH port.")
    user: str = Field("root", description="Remote user; the storage steps need root.")
    key_file: Path | None = Field(None, description="Private key; None uses the SSH agent/default keys.")
    known_hosts: Path | None = Field(
        None,
        description="known_hosts file whose keys are the only ones accepted; None uses ~/.ssh/known_hosts.",
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="TCP + SSH handshake timeout.")


class SshTarget(SshAccess):
    """A host reached over SSH with a pinned host key."""

    netns: str | None = Field(
        None, description="Network namespace the host lives in (the embedded lab); None = this namespace."
    )

    @classmethod
    def of(cls, access: SshAccess) -> SshTarget:
        """The target for a host described by its SSH access (an inventory host, say)."""
        return cls.model_validate({name: getattr(access, name) for name in SshAccess.model_fields})

    @property
    def key(self) -> str:
        return f"{self.user}@{self.address}:{self.port}/{self.netns or '-'}"


Target = LocalTarget | SshTarget
LOCAL = LocalTarget()


class CommandError(Exception):
    """A command ran and exited with a code the caller did not expect."""

    def __init__(self, command: str, exit_code: int, stderr_tail: str, target: str) -> None:
        self.command = command
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.target = target
        super().__init__(command, exit_code, stderr_tail, target)

    def __str__(self) -> str:
        tail = f"\n{self.stderr_tail}" if self.stderr_tail else ""
        return f"[{self.target}] `{self.command}` exited {self.exit_code}{tail}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect pickles failed task states; keep the exception picklable with all its fields.
        return (type(self), (self.command, self.exit_code, self.stderr_tail, self.target))


class TransportError(CommandError):
    """The connection failed, so the command may not have run: retrying can help."""

    def __str__(self) -> str:
        return f"[{self.target}] SSH transport error running `{self.command}`: {self.stderr_tail}"


class CommandTimeout(CommandError):
    """The command did not finish within its timeout and was stopped."""

    def __str__(self) -> str:
        return (
            f"[{self.target}] `{self.command}` timed out{': ' + self.stderr_tail if self.stderr_tail else ''}"
        )


class HostKeyRejected(CommandError):
    """The host's key is not the pinned one: never retried (a retry cannot fix it, and must not)."""

    def __str__(self) -> str:
        return f"[{self.target}] {self.stderr_tail}"


DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


def known_hosts_of(target: SshAccess) -> Path:
    """The known_hosts file whose keys are the only ones accepted for ``target``."""
    return (target.known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()


def is_transport_error(exc: BaseException | None) -> bool:
    return isinstance(exc, TransportError)


class CommandResult(BaseModel):
    """What a command did."""

    command: str = Field(description="The command as logged (secrets masked).")
    target: str = Field(description="Where it ran.")
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    dry_run: bool = Field(False, description="True when nothing was run.")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in ``text`` (longest first, so overlapping secrets stay hidden)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger

        try:
            return get_run_logger()
        except MissingContextError:
            pass
    except ImportError:  # pragma: no cover - prefect is a hard dependency
        pass
    return logging.getLogger("hsf.executor")


class _ChunkedStdin(io.StringIO):
    """The command's stdin for invoke, in chunks: invoke asks a stream that is not a terminal for one
    character at a time and sleeps 10 ms between reads, so a 1 KiB file took 10 s to send and a larger
    one outlived the command's timeout."""

    CHUNK_CHARS = 1 << 16

    def read(self, size: int | None = -1) -> str:
        return super().read(self.CHUNK_CHARS)


class _LineSink:
    """File-like object for fabric/invoke streams that forwards complete lines to a callback."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._on_line = on_line
        self._buffer = ""

    def write(self, data: str) -> int:
        self._buffer += data
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._on_line(line)
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self._on_line(self._buffer)
            self._buffer = ""


class RecordedCommand(BaseModel):
    """A command that changed (or could change) state on a target, for drill reports."""

    target: str
    command: str = Field(description="Masked command line.")
    at: float = Field(description="time.monotonic() when it started.")
    exit_code: int | None = None


@dataclass
class Executor:
    """Runs argv lists locally or over SSH; holds one SSH connection per target."""

    dry_run: bool = False
    secrets: set[str] = field(default_factory=set)
    _connections: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _recordings: list[list[RecordedCommand]] = field(default_factory=list, repr=False)

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[RecordedCommand]]:
        """Collect every non-read-only command run while the block is active (probes are left out)."""
        commands: list[RecordedCommand] = []
        self._recordings.append(commands)
        try:
            yield commands
        finally:
            self._recordings.remove(commands)

    def add_secret(self, value: str) -> None:
        if value:
            self.secrets.add(value)

    def display(self, argv: Sequence[str], extra_secrets: Iterable[str] = ()) -> str:
        return mask(shlex.join(argv), [*self.secrets, *extra_secrets])

    def run(
        self,
        argv: Sequence[str],
        target: Target = LOCAL,
        *,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        ok_codes: Sequence[int] = (0,),
        secrets: Iterable[str] = (),
        read_only: bool = False,
        on_line: Callable[[str], None] | None = None,
        quiet: bool = False,
        workload: bool = False,
    ) -> CommandResult:
        """Run ``argv`` on ``target``; raise unless its exit code is in ``ok_codes``.

        ``env`` values are never logged. Over SSH they become an ``env K=V`` prefix (sshd drops
        environment requests it does not ``AcceptEnv``), so they are visible in the remote process
        list for the command's lifetime: pass secrets on ``stdin`` instead. ``on_line`` receives each
        output line (stdout and stderr) as it arrives, for progress of long steps. ``read_only`` probes
        still run in dry-run mode. A ``workload`` command is a drill's stand-in for the application (the
        acknowledged writer): it changes state, but it is no operator's action, so recordings leave it out.
        """
        if not argv:
            raise ValueError("empty command")
        argv = [str(a) for a in argv]
        all_secrets = [*self.secrets, *secrets, *(env or {}).values()]
        shown = self.display(argv, all_secrets)
        log = _logger()
        if self.dry_run and not read_only:
            log.info("[%s] (dry run; not actually running) %s", target.name, shown)
            return CommandResult(command=shown, target=target.name, exit_code=0, dry_run=True)
        if not quiet:
            log.debug("[%s] $ %s", target.name, shown)
        masked_line = (lambda line: on_line(mask(line, all_secrets))) if on_line else None
        started = time.monotonic()
        record = RecordedCommand(target=target.name, command=shown, at=started)
        if not read_only and not workload:
            for recording in self._recordings:
                recording.append(record)
        if isinstance(target, SshTarget):
            remote_argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv] if env else argv
            code, out, err = self._run_ssh(remote_argv, target, timeout, stdin, shown, masked_line)
        else:
            code, out, err = self._run_local(argv, timeout, env, stdin, shown, masked_line)
        record.exit_code = code
        result = CommandResult(
            command=shown,
            target=target.name,
            exit_code=code,
            stdout=out,
            stderr=mask(err, all_secrets),
            duration_s=round(time.monotonic() - started, 3),
        )
        if code not in ok_codes:
            error_type = TransportError if _is_ssh_client(argv) and code == 255 else CommandError
            raise error_type(shown, code, tail(result.stderr), target.name)
        return result

    # -- local -------------------------------------------------------------------------------------

    def _run_local(
        self,
        argv: list[str],
        timeout: float,
        env: Mapping[str, str] | None,
        stdin: str | None,
        shown: str,
        on_line: Callable[[str], None] | None,
    ) -> tuple[int, str, str]:
        full_env = {**os.environ, **env} if env else None
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                text=True,
                start_new_session=True,  # so a timeout can stop the whole process group
            )
        except FileNotFoundError as exc:
            raise CommandError(shown, 127, f"command not found: {argv[0]}", "localhost") from exc
        out_parts: list[str] = []
        err_parts: list[str] = []

        def pump(stream: Any, parts: list[str]) -> None:
            for line in stream:
                parts.append(line)
                if on_line:
                    on_line(line.rstrip("\n"))

        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, out_parts), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, err_parts), daemon=True),
        ]
        for thread in pumps:
            thread.start()
        if stdin is not None and proc.stdin:
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc)
            raise CommandTimeout(shown, -1, f"after {timeout:.0f} s", "localhost") from exc
        for thread in pumps:
            thread.join()
        return code, "".join(out_parts), "".join(err_parts)

    # -- ssh ---------------------------------------------------------------------------------------

    def _connection(self, target: SshTarget) -> Any:
        with self._lock:
            conn = self._connections.get(target.key)
            if conn is not None and conn.is_connected:
                return conn
            conn = _open_connection(target)
            self._connections[target.key] = conn
            return conn

    def drop_connection(self, target: SshTarget) -> None:
        with self._lock:
            conn = self._connections.pop(target.key, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            conns, self._connections = list(self._connections.values()), {}
        for conn in conns:
            conn.close()

    def _run_ssh(
        self,
        argv: list[str],
        target: SshTarget,
        timeout: float,
        stdin: str | None,
        shown: str,
        on_line: Callable[[str], None] | None,
    ) -> tuple[int, str, str]:
        _import_ssh_stack()
        from invoke.exceptions import CommandTimedOut
        from paramiko.ssh_exception import BadHostKeyException, SSHException

        command = shlex.join(argv)  # the SSH boundary: the only place an argv becomes shell text
        kwargs: dict[str, Any] = {"hide": True, "warn": True, "timeout": timeout, "pty": False}
        kwargs["in_stream"] = _ChunkedStdin(stdin) if stdin is not None else False
        if on_line:
            kwargs["out_stream"] = _LineSink(on_line)
            kwargs["err_stream"] = _LineSink(on_line)
        try:
            conn = self._connection(target)
            result = conn.run(command, **kwargs)
        except CommandTimedOut as exc:
            self.drop_connection(target)
            raise CommandTimeout(shown, -1, f"after {timeout:.0f} s", target.name) from exc
        except (BadHostKeyException, SSHException) as exc:
            rejected = isinstance(exc, BadHostKeyException) or "not found in known_hosts" in str(exc)
            if not rejected:
                self.drop_connection(target)
                raise TransportError(shown, 255, f"{type(exc).__name__}: {exc}", target.name) from exc
            self.drop_connection(target)
            known = known_hosts_of(target)
            how = "differs from the one in" if isinstance(exc, BadHostKeyException) else "is not in"
            raise HostKeyRejected(
                shown,
                255,
                f"the host key of {target.address}:{target.port} {how} {known}: check the host's "
                f"fingerprint, then add it (ssh-keyscan -p {target.port} {target.address}); not retried",
                target.name,
            ) from None
        except (OSError, EOFError) as exc:
            self.drop_connection(target)
            raise TransportError(shown, 255, f"{type(exc).__name__}: {exc}", target.name) from exc
        if result.exited == -1:  # the channel closed without an exit status: the link dropped
            self.drop_connection(target)
            raise TransportError(shown, 255, "connection closed before the command exited", target.name)
        return result.exited, result.stdout, result.stderr


def _is_ssh_client(argv: Sequence[str]) -> bool:
    return Path(argv[0]).name in {"ssh", "scp"}


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


_SSH_IMPORT_LOCK = threading.Lock()


def _import_ssh_stack() -> None:
    """Import fabric/paramiko once, under a lock: they load lazily (start-up time), and paramiko's first
    import from several task threads at once failed with a circular-import error (three VMs' SSH waits)."""
    with _SSH_IMPORT_LOCK:
        import fabric  # noqa: F401
        import paramiko  # noqa: F401


def _open_connection(target: SshTarget) -> Any:
    """A connected fabric Connection that accepts only the pinned host key."""
    _import_ssh_stack()
    from fabric import Connection
    from paramiko import RejectPolicy

    from tasks import netns

    sock: socket.socket | None = None
    if target.netns:
        sock = netns.connect_tcp(target.netns, target.address, target.port, target.connect_timeout_s)
    connect_kwargs: dict[str, Any] = {
        "allow_agent": target.key_file is None,
        "look_for_keys": target.key_file is None,
        "banner_timeout": target.connect_timeout_s,
        "auth_timeout": target.connect_timeout_s,
    }
    if target.key_file:
        connect_kwargs["key_filename"] = str(target.key_file)
    if sock is not None:
        connect_kwargs["sock"] = sock
    conn = Connection(
        target.address,
        user=target.user,
        port=target.port,
        connect_timeout=target.connect_timeout_s,
        connect_kwargs=connect_kwargs,
    )
    conn.client.set_missing_host_key_policy(RejectPolicy())
    conn.client.get_host_keys().clear()
    known_hosts = known_hosts_of(target)
    if known_hosts.is_file():  # else every host is rejected, with a line saying which file to fill
        conn.client.load_host_keys(str(known_hosts))
    try:
        conn.open()
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    return conn
