"""Private mode: network-reaching settings refused, and a socket guard that proves nothing connects out."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from ideaweave.config import Settings, replace
from ideaweave.errors import ConfigError
from ideaweave.privacy import check_settings, is_loopback_host, network_settings


def test_loopback_hosts():
    assert all(is_loopback_host(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback_host(h) for h in ("0.0.0.0", "192.168.1.4", "10.0.0.1", "example.org", "::"))


def test_a_remote_setting_is_refused_in_private_mode():
    settings = replace(Settings(), private_mode=True, **{"models.embedding": "https://example.org/model.gguf"})
    assert network_settings(settings)
    with pytest.raises(ConfigError, match="private mode refuses these settings: models.embedding"):
        check_settings(settings)


def test_a_non_loopback_api_is_refused_always():
    with pytest.raises(ConfigError, match="api.host"):
        check_settings(replace(Settings(), **{"api.host": "0.0.0.0"}))


GUARDED = """
import socket, sys
from ideaweave.config import Settings, replace
from ideaweave.privacy import enter_private_mode, NetworkRefused
enter_private_mode(replace(Settings(), private_mode=True))
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
socket.create_connection(server.getsockname(), timeout=2).close()   # loopback stays allowed
for target in [("93.184.216.34", 80), ("10.1.2.3", 443)]:
    try:
        socket.create_connection(target, timeout=2)
    except NetworkRefused as exc:
        print("refused", target[0])
try:
    socket.getaddrinfo("example.org", 80)
except NetworkRefused:
    print("refused lookup")
import os; print(os.environ["HF_HUB_OFFLINE"])
"""


def test_socket_guard_refuses_every_non_loopback_connection():
    result = subprocess.run([sys.executable, "-c", GUARDED], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["refused 93.184.216.34", "refused 10.1.2.3", "refused lookup", "1"]


def test_cli_refuses_a_remote_model_in_private_mode(tmp_path):
    (tmp_path / ".obsidian").mkdir()
    env = {"IDEAWEAVE_MODELS_EMBEDDING": "http://example.org/m.gguf", "XDG_STATE_HOME": str(tmp_path / "s"),
           "XDG_CONFIG_HOME": str(tmp_path / "c"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "ideaweave.cli", "status", "--private", "--vault", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("ideaweave: private mode refuses these settings: models.embedding")
