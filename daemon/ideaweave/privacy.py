"""Private mode: refuse anything that could reach the network, and make sure nothing does.

ideaweave has no network code path of its own (models are local files; the API binds to loopback).
Private mode turns that into guarantees a user can check:
- settings that could reach the network are refused at start-up, with the setting named;
- the offline switches of every library that honours one are set;
- a socket guard is installed in the process: any connection to an address that is not loopback
  raises `NetworkRefused`, so a future feature or a library that phones home fails loudly instead of
  leaking. The test suite runs under the same guard.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlparse

from .config import Settings
from .errors import ConfigError, IdeaweaveError

# Environment switches that keep libraries from reaching out (model hubs, telemetry).
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}


class NetworkRefused(IdeaweaveError):
    """A connection to a non-loopback address was attempted in private mode."""


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def network_settings(settings: Settings) -> list[str]:
    """Every setting whose value could make ideaweave talk to another machine, as 'key: why'."""
    problems = []
    if not is_loopback_host(settings.api.host):
        problems.append(f"api.host = {settings.api.host!r}: the API must bind to a loopback address")
    for key, value in (("models.embedding", settings.models.embedding), ("models.text", settings.models.text),
                       ("models.dir", settings.models.dir)):
        if urlparse(value).scheme not in ("", "file") and "://" in value:
            problems.append(f"{key} = {value!r}: models must be local files")
    return problems


def check_settings(settings: Settings) -> None:
    """Refuse network-reaching settings: always for the API host, for everything in private mode."""
    problems = network_settings(settings)
    if problems and settings.private_mode:
        raise ConfigError("private mode refuses these settings: " + "; ".join(problems))
    api_problems = [p for p in problems if p.startswith("api.host")]
    if api_problems:
        raise ConfigError(api_problems[0])


def _address_host(address) -> str | None:
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None  # AF_UNIX paths and the like never leave the machine


def _guarded(original):
    def connect(self, address, *args, **kwargs):
        host = _address_host(address)
        if host is not None and self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback_host(host):
            raise NetworkRefused(f"private mode: refused a connection to {host}")
        return original(self, address, *args, **kwargs)

    connect.__ideaweave_guard__ = True
    return connect


def install_socket_guard() -> None:
    """From now on, connecting this process to a non-loopback address raises NetworkRefused."""
    if getattr(socket.socket.connect, "__ideaweave_guard__", False):
        return
    socket.socket.connect = _guarded(socket.socket.connect)
    socket.socket.connect_ex = _guarded(socket.socket.connect_ex)
    original_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not is_loopback_host(str(host)) and str(host) not in ("", "0.0.0.0"):
            raise NetworkRefused(f"private mode: refused to resolve {host}")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def enter_private_mode(settings: Settings) -> None:
    """Check the settings, set the offline switches and install the socket guard."""
    check_settings(settings)
    if not settings.private_mode:
        return
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    install_socket_guard()
