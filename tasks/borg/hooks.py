"""Commands around a backup and a restore drill, as operators run them (borgmatic's before/after hooks).

A hook is a prefect-shell ``ShellOperation`` block: named commands, their environment and working
directory, saved once and editable in Prefect's UI. The settings name the block for each stage
(``[backup.hooks]``); environment values that are secrets come from Prefect ``Secret`` blocks
(``secret_env``), never from the block's own plain ``env``.

The commands run through the project's executor — on the backup client over SSH, or on this machine
— as one script for the block's shell, the way ``ShellOperation.run`` writes them (one line per
command, no ``set -e``: start with ``set -e`` to stop at the first command that fails). Not through
``ShellOperation.run`` itself: it reports a failure as "PID n failed with return code 1" without the
command's stderr, logs the output unmasked and has no dry run. Through the executor a failure is one
line with its stderr tail, secret values are masked in everything logged, a dry run prints the
commands, and the script reaches the shell on stdin, so no secret shows in a process list.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks.context import current_executor
from tasks.drbd.plan import Refused
from tasks.executor import CommandError, Target, TransportError, mask

if TYPE_CHECKING:
    from tasks.settings import BackupHooks

HookStage = Literal["before_backup", "after_backup", "on_error", "before_restore", "after_restore"]
HOOK_STAGES: tuple[HookStage, ...] = get_args(HookStage)
POSIX_SHELLS = ("bash", "sh", "dash", "zsh", "ksh")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The shell reads the whole script from stdin first, then runs it with stdin closed: a command that
# reads stdin cannot swallow the lines after it, and the script (secrets included) is never in argv.
RUN_SCRIPT_FROM_STDIN = 'eval "$(cat)" </dev/null'


class HookFailed(Exception):
    """A hook's commands exited non-zero: the stage, the block, where, the exit code and stderr's tail."""


class Hook(BaseModel):
    """One stage's hook as loaded from its ShellOperation block."""

    model_config = ConfigDict(frozen=True)

    stage: HookStage
    block: str = Field(description="The ShellOperation block's name.")
    commands: tuple[str, ...] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict, description="The block's own (plain) environment.")
    working_dir: str | None = None
    shell: str = "bash"


def load_hook(stage: HookStage, block: str) -> Hook:
    """The hook of ``stage`` from the ShellOperation block ``block``; one line when it cannot serve."""
    from prefect_shell import ShellOperation

    where = f"{stage} hook: ShellOperation block {block!r}"
    try:
        operation = ShellOperation.load(block)
    except ValueError as exc:
        if isinstance(exc, ValidationError):  # e.g. a working_dir that does not exist on this machine
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise Refused(
                f"{where}: {field}: {first['msg']} (prefect-shell checks it on this machine; for a remote "
                "client make `cd DIR` its first command)"
            ) from None
        raise Refused(
            f"{where} does not exist (create it in Prefect's UI or with ShellOperation.save)"
        ) from None
    assert isinstance(operation, ShellOperation)  # sync context: never a coroutine
    shell = (operation.shell or "bash").lower()
    if shell not in POSIX_SHELLS:
        raise Refused(f"{where}: shell {shell!r} is not a POSIX shell ({', '.join(POSIX_SHELLS)})")
    if not operation.commands:
        raise Refused(f"{where} has no commands")
    if bad := [name for name in operation.env if not ENV_NAME.match(name)]:
        raise Refused(f"{where}: {bad[0]!r} is not an environment variable name")
    return Hook(
        stage=stage,
        block=block,
        commands=tuple(operation.commands),
        env=dict(operation.env),
        working_dir=str(operation.working_dir) if operation.working_dir else None,
        shell=shell,
    )


def hook_script(hook: Hook, secret_env: Mapping[str, str]) -> str:
    """The script the shell runs: the environment exported, the working directory, then the commands."""
    lines = [f"# {hook.stage} hook, ShellOperation block {hook.block}"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in {**hook.env, **secret_env}.items()]
    if hook.working_dir:
        lines.append(f"cd -- {shlex.quote(hook.working_dir)} || exit")
    lines += hook.commands
    return "\n".join(lines) + "\n"


def hook_argv(hook: Hook) -> list[str]:
    """The block's shell, reading the script from stdin (see :data:`RUN_SCRIPT_FROM_STDIN`)."""
    return [hook.shell, "-c", RUN_SCRIPT_FROM_STDIN]


def run_hook(hook: Hook, target: Target, secret_env: Mapping[str, str], timeout_s: float) -> list[str]:
    """Run ``hook`` on ``target``; its output lines (secrets masked). Raises :class:`HookFailed`."""
    from prefect.logging import get_run_logger

    log = get_run_logger()
    secrets = [v for v in secret_env.values() if v]
    names = ", ".join([*hook.env, *secret_env]) or "none"
    log.info(
        "%s hook %s on %s (environment: %s): %s",
        hook.stage, hook.block, target.name, names, " ; ".join(mask(c, secrets) for c in hook.commands),
    )  # fmt: skip
    try:
        result = current_executor().run(
            hook_argv(hook), target, stdin=hook_script(hook, secret_env), secrets=secrets, timeout=timeout_s
        )
    except TransportError:
        raise  # the host did not answer: not the hook's failure
    except CommandError as exc:
        tail = exc.stderr_tail.strip().splitlines()
        why = f": {tail[-1]}" if tail else ""
        raise HookFailed(
            f"{hook.stage} hook {hook.block} failed on {exc.target} (exit {exc.exit_code}){why}"
        ) from None
    lines = [mask(line, secrets) for line in result.stdout.splitlines()]
    for line in lines:
        log.info("%s hook %s: %s", hook.stage, hook.block, line)
    return lines


class Hooks:
    """The hooks of one flow run, all loaded (and their secrets read) before anything runs."""

    def __init__(
        self,
        stages: Mapping[HookStage, Hook],
        target: Target,
        secret_env: Mapping[str, str],
        timeout_s: float,
    ) -> None:
        self.stages, self.target, self.secret_env, self.timeout_s = (
            dict(stages),
            target,
            secret_env,
            timeout_s,
        )
        self.ran: list[HookStage] = []

    @classmethod
    def load(cls, settings: BackupHooks, target: Target) -> Hooks:
        """Every hook the settings name, for ``target``; :class:`Refused` in one line when one cannot run."""
        from tasks.cluster import stored_secret

        stages = {
            stage: load_hook(stage, block)
            for stage in HOOK_STAGES
            if (block := getattr(settings, stage)) is not None
        }
        secret_env: dict[str, str] = {}
        for name, block in settings.secret_env.items():
            value = stored_secret(block)
            if value is None:
                raise Refused(f"hook environment {name}: no Secret block named {block!r}")
            secret_env[name] = value
        return cls(stages, target, secret_env, settings.timeout_s)

    def run(self, stage: HookStage) -> list[str]:
        """Run the hook of ``stage``, if the settings name one; raises :class:`HookFailed`."""
        hook = self.stages.get(stage)
        if hook is None:
            return []
        self.ran.append(stage)
        return run_hook(hook, self.target, self.secret_env, self.timeout_s)

    def after_failure(self, error: BaseException) -> None:
        """The on-error hook after any failure; its own failure is logged, never hides ``error``."""
        from prefect.logging import get_run_logger

        if "on_error" not in self.stages:
            return
        get_run_logger().warning(
            "running the on_error hook after: %s", str(error).splitlines()[0] if str(error) else error
        )
        try:
            self.run("on_error")
        except Exception as exc:
            get_run_logger().error("the on_error hook failed too: %s", exc)
