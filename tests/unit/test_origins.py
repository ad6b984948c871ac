"""Which Host names count as local for a loopback-bound server (Ollama's allowed hosts): a page
calling "its own" server under any other name reached it by DNS rebinding."""

from __future__ import annotations

import socket

import pytest

from gateway.api.origins import host_name, is_local_host


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("127.0.0.1:11434", "127.0.0.1"),
        ("[::1]:11434", "::1"),
        ("[::1]", "::1"),
        ("Gateway.Local:80", "gateway.local"),
        ("localhost", "localhost"),
        ("example.com.:8080", "example.com"),
    ],
)
def test_host_name_drops_the_port(host: str, name: str) -> None:
    assert host_name(host) == name


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:11434",
        "[::1]:11434",
        "localhost:11434",
        "app.localhost",
        "printer.local:80",
        "gateway.internal:8080",
        "10.1.2.3:11434",
        "192.168.1.20",
        f"{socket.gethostname()}:11434",
    ],
)
def test_local_hosts(host: str) -> None:
    assert is_local_host(host)


OTHER_HOSTS = ["evil.example:11434", "8.8.8.8", "localhost.evil.example", "local", "[2606:4700::1]"]


@pytest.mark.parametrize("host", OTHER_HOSTS)
def test_other_hosts(host: str) -> None:
    assert not is_local_host(host)
