"""`ideaweave service`: run `ideaweave watch` for one vault at login, as a systemd user unit on Linux or a
launchd agent on macOS, at low priority.

What to write is decided purely (`plan_service` gives the file's path and text and the commands that
load and unload it); `install`, `uninstall` and `status` carry it out with systemctl or launchctl.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import IdeaweaveError

UNIT_NAME = "ideaweave.service"
AGENT_LABEL = "org.ideaweave.watch"


class ServiceError(IdeaweaveError):
    """The service manager refused a step (systemctl or launchctl failed)."""


@dataclass(frozen=True)
class ServicePlan:
    manager: str  # "systemd" or "launchd"
    path: Path  # the unit or agent file this command writes, and the only one
    content: str
    load: tuple[tuple[str, ...], ...]  # run after writing the file
    unload: tuple[tuple[str, ...], ...]  # run before removing it
    status: tuple[str, ...]
    # Links the manager makes when it enables the file (systemd's default.target.wants/ entry). `disable`
    # removes them, but only with a reachable manager: uninstall removes what is left.
    enable_links: tuple[Path, ...] = ()


def watch_command(executable: list[str], vault: Path, config: Path | None, private: bool) -> list[str]:
    command = [*executable, "watch", "--vault", str(vault)]
    if config is not None:
        command += ["--config", str(config)]
    return command + (["--private"] if private else [])


def _systemd_quote(arg: str) -> str:
    # systemd expands % specifiers and $ variables inside ExecStart even in quotes: double them.
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def systemd_unit(command: list[str]) -> str:
    return f"""# Written by `ideaweave service install`; `ideaweave service uninstall` removes it.
[Unit]
Description=ideaweave: related notes and summaries for a markdown vault
After=default.target

[Service]
Type=simple
ExecStart={' '.join(_systemd_quote(arg) for arg in command)}
# A good neighbour: lowest CPU and disk priority (the daemon also lowers its own CPU priority).
Nice=10
CPUSchedulingPolicy=batch
IOSchedulingClass=idle
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=10
# Configuration (2), model (3) and vault (4) errors, and another daemon already watching the
# vault (6), need a person: restarting would only fail again.
RestartPreventExitStatus=2 3 4 6

[Install]
WantedBy=default.target
"""


def launchd_plist(command: list[str], log: Path) -> str:
    agent = {
        "Label": AGENT_LABEL, "ProgramArguments": command, "RunAtLoad": True,
        # Restarted after a failure, at most every 30 s; a clean stop stays stopped.
        "KeepAlive": {"SuccessfulExit": False}, "ThrottleInterval": 30,
        "ProcessType": "Background", "Nice": 10, "LowPriorityIO": True,
        "StandardErrorPath": str(log),
    }
    return plistlib.dumps(agent).decode("utf-8")


def plan_service(platform: str, env: dict[str, str], command: list[str], uid: int) -> ServicePlan:
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if platform == "darwin":
        target = f"gui/{uid}"
        path = home / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist"
        content = launchd_plist(command, home / "Library" / "Logs" / "ideaweave.log")
        return ServicePlan("launchd", path, content, load=(("launchctl", "bootstrap", target, str(path)),),
                           unload=(("launchctl", "bootout", f"{target}/{AGENT_LABEL}"),),
                           status=("launchctl", "print", f"{target}/{AGENT_LABEL}"))
    if platform.startswith("linux"):
        path = Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "systemd" / "user" / UNIT_NAME
        return ServicePlan("systemd", path, systemd_unit(command),
                           load=(("systemctl", "--user", "daemon-reload"), ("systemctl", "--user", "enable", "--now", UNIT_NAME)),
                           unload=(("systemctl", "--user", "disable", "--now", UNIT_NAME),),
                           status=("systemctl", "--user", "show", UNIT_NAME, "--property=ActiveState,SubState,ActiveEnterTimestamp,MainPID"),
                           enable_links=(path.parent / "default.target.wants" / UNIT_NAME,))
    raise ServiceError(f"ideaweave service knows systemd (Linux) and launchd (macOS), not {platform}; "
                       "run `ideaweave watch` from your system's own start-up mechanism")


def _run(cmd: tuple[str, ...]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return subprocess.CompletedProcess(cmd, 127, "", f"{cmd[0]}: command not found")


def install(plan: ServicePlan, files_only: bool = False) -> None:
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    partial = plan.path.with_name(f".{plan.path.name}.partial")
    partial.write_text(plan.content, encoding="utf-8")
    os.replace(partial, plan.path)
    if files_only:
        return
    for cmd in plan.load:
        result = _run(cmd)
        if result.returncode != 0:
            raise ServiceError(f"wrote {plan.path}, but `{shlex.join(cmd)}` failed: {result.stderr.strip() or result.stdout.strip()}"
                               f"; `ideaweave service uninstall` removes the file")


def uninstall(plan: ServicePlan, files_only: bool = False) -> bool:
    """Stop and unload the service, then remove its file; False when there was nothing installed."""
    if not plan.path.exists():
        return False
    if not files_only:
        for cmd in plan.unload:
            _run(cmd)  # a service that is not loaded (or a manager that is not running) has nothing to stop
    plan.path.unlink()
    for link in plan.enable_links:
        if link.is_symlink() and Path(os.readlink(link)) == plan.path:
            link.unlink()
    if not files_only and plan.manager == "systemd":
        _run(("systemctl", "--user", "daemon-reload"))
    return True


def status(plan: ServicePlan) -> dict:
    """Whether the file is installed, whether the service runs, since when, and what the manager said."""
    data = {"manager": plan.manager, "path": str(plan.path), "installed": plan.path.exists(),
            "running": None, "since": None, "pid": None, "problem": None}
    result = _run(plan.status)
    if plan.manager == "systemd" and result.returncode == 0:
        fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        data.update(running=fields.get("ActiveState") == "active", since=fields.get("ActiveEnterTimestamp") or None,
                    pid=int(fields.get("MainPID") or 0) or None)
    elif plan.manager == "launchd" and result.returncode == 0:
        lines = [line.strip() for line in result.stdout.splitlines()]
        pid = next((int(line.split("=")[1]) for line in lines if line.startswith("pid =")), None)
        data.update(running=any(line == "state = running" for line in lines), pid=pid, since=_started(pid))
    elif plan.manager == "launchd":
        data["running"] = False  # launchctl print fails for a label that is not loaded
    else:
        data["problem"] = f"`{shlex.join(plan.status)}` failed: {result.stderr.strip()}"
    return data


def _started(pid: int | None) -> str | None:
    if pid is None:
        return None
    import datetime

    import psutil

    try:
        return datetime.datetime.fromtimestamp(psutil.Process(pid).create_time()).isoformat(timespec="seconds")
    except psutil.Error:
        return None


def ideaweave_executable() -> list[str]:
    """How the service starts this same installation: its console script, else its interpreter."""
    script = Path(sys.executable).parent / "ideaweave"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "ideaweave.cli"]
