"""`ideaweave service`: the unit and agent files it writes, checked by systemd's own parser, and removed
without a trace. The generated unit is checked with `systemd-analyze verify`. No test reaches a running
user manager: enabling a unit for real would touch the user manager of the machine running the tests, and
where they run in CI (a container) none can be started (`systemd --user` exits at once, and
`systemctl --user` finds no bus). So the tests write files (--files-only), or run with a runtime folder of
their own, where systemctl finds no manager: `enable` and `disable` then work on the files alone, as they
do offline, and `install`'s call to the manager fails as it does for a user without one.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import jsonschema_rs
import pytest

from ideaweave import cli, schemas
from ideaweave.service import ServiceError, _systemd_quote, ideaweave_executable, plan_service, status, watch_command


@pytest.fixture
def user_env(tmp_path, monkeypatch) -> Path:
    """A home of its own: the unit goes to tmp_path/config/systemd/user, never the real one."""
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("IDEAWEAVE_CONFIG", str(config))
    return tmp_path


def example_vault(folder: Path) -> Path:
    vault = folder / "My Notes 100%"  # a space and a % sign: both need quoting in a unit file
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "a.md").write_text("# A\n")
    return vault


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_install_writes_a_unit_systemd_accepts_and_uninstall_removes_it(user_env, capsys):
    vault = example_vault(user_env)
    before = sorted(p for p in user_env.rglob("*") if p.is_file())
    assert cli.main(["service", "install", "--files-only", "--json", "--vault", str(vault)]) == 0
    written = json.loads(capsys.readouterr().out)
    jsonschema_rs.validate(schemas.SERVICE_INSTALL_REPORT, written)
    unit = Path(written["path"])
    assert unit == user_env / "config" / "systemd" / "user" / "ideaweave.service"
    assert written["command"] == [*ideaweave_executable(), "watch", "--vault", str(vault),
                                  "--config", str(user_env / "config.toml")]
    text = unit.read_text()
    assert f"--vault\" {_systemd_quote(str(vault))}" in text and "100%%" in text
    assert "Nice=10" in text and "IOSchedulingClass=idle" in text

    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    assert str(unit) not in verify.stderr and "ideaweave.service" not in verify.stderr, verify.stderr

    assert status(plan_service("linux", {"XDG_CONFIG_HOME": str(user_env / "config")}, [], 0))["installed"] is True
    cli.main(["service", "status", "--json"])  # exit status 0 either way: it only reports
    reported = json.loads(capsys.readouterr().out)
    jsonschema_rs.validate(schemas.SERVICE_STATUS_REPORT, reported)
    assert reported["installed"] is True and reported["path"] == str(unit)

    assert cli.main(["service", "uninstall", "--files-only", "--json"]) == 0
    removed = json.loads(capsys.readouterr().out)
    jsonschema_rs.validate(schemas.SERVICE_UNINSTALL_REPORT, removed)
    assert removed["removed"] is True
    assert sorted(p for p in user_env.rglob("*") if p.is_file()) == before
    assert cli.main(["service", "uninstall", "--files-only"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def files_and_links(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())


@pytest.fixture
def no_user_manager(user_env, monkeypatch) -> Path:
    """A runtime folder with no bus in it: systemctl reaches no manager, whatever the machine runs."""
    runtime = user_env / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    return user_env


def systemctl_enable_offline(unit: Path) -> Path:
    """What enabling writes: the link in default.target.wants/, made by systemctl itself from the unit's
    [Install] section (offline, so only files change)."""
    env = dict(os.environ, SYSTEMD_OFFLINE="1")
    enable = subprocess.run(["systemctl", "--user", "enable", unit.name], capture_output=True, text=True, env=env)
    assert enable.returncode == 0, enable.stderr
    link = unit.parent / "default.target.wants" / unit.name
    assert link.is_symlink() and link.resolve() == unit
    return link


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")
def test_without_a_user_manager_install_says_so_in_one_line_and_uninstall_removes_everything(no_user_manager, capsys):
    vault = example_vault(no_user_manager)
    before = files_and_links(no_user_manager)
    assert cli.main(["service", "install", "--vault", str(vault)]) != 0
    line, = capsys.readouterr().err.strip().splitlines()
    assert "`systemctl --user daemon-reload` failed" in line and "ideaweave service uninstall" in line
    unit = no_user_manager / "config" / "systemd" / "user" / "ideaweave.service"
    assert unit.is_file()
    systemctl_enable_offline(unit)  # as if the manager had been there to enable it

    assert cli.main(["service", "uninstall"]) == 0
    assert f"removed {unit}" in capsys.readouterr().out
    assert files_and_links(no_user_manager) == before


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")
def test_uninstall_removes_the_enable_link_even_when_systemctl_is_not_asked(no_user_manager, capsys):
    vault = example_vault(no_user_manager)
    before = files_and_links(no_user_manager)
    assert cli.main(["service", "install", "--files-only", "--vault", str(vault)]) == 0
    link = systemctl_enable_offline(no_user_manager / "config" / "systemd" / "user" / "ideaweave.service")
    other = link.with_name("someone-else.service")  # a link that is not ideaweave's stays
    other.symlink_to(no_user_manager / "elsewhere.service")

    assert cli.main(["service", "uninstall", "--files-only"]) == 0
    assert not link.is_symlink() and other.is_symlink()
    other.unlink()
    assert files_and_links(no_user_manager) == before


def test_systemd_quoting_keeps_specifiers_and_variables_literal():
    assert _systemd_quote('/a b/%h/$HOME/"q"\\') == '"/a b/%%h/$$HOME/\\"q\\"\\\\"'


def test_the_launchd_agent_runs_the_same_command_at_low_priority(tmp_path):
    command = watch_command(["/opt/bin/ideaweave"], tmp_path / "Notes", None, private=True)
    plan = plan_service("darwin", {"HOME": str(tmp_path)}, command, 501)
    assert plan.path == tmp_path / "Library" / "LaunchAgents" / "org.ideaweave.watch.plist"
    agent = plistlib.loads(plan.content.encode())
    assert agent["ProgramArguments"] == ["/opt/bin/ideaweave", "watch", "--vault", str(tmp_path / "Notes"), "--private"]
    assert agent["Nice"] == 10 and agent["LowPriorityIO"] is True and agent["ProcessType"] == "Background"
    assert plan.load == (("launchctl", "bootstrap", "gui/501", str(plan.path)),)
    assert plan.unload == (("launchctl", "bootout", "gui/501/org.ideaweave.watch"),)


def test_other_systems_are_refused_with_what_to_do_instead():
    with pytest.raises(ServiceError, match="ideaweave watch"):
        plan_service("win32", {"HOME": "/h"}, [], 0)
