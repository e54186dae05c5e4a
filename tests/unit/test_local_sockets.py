"""shared/local_sockets.py: a service's socket path is free to bind after a crash, and never
taken from a process that still listens on it."""

from __future__ import annotations

import socket

import pytest

from shared import local_sockets


def test_each_process_of_a_service_has_its_own_socket(tmp_path):
    assert local_sockets.worker_paths(str(tmp_path), "order_service", 2) == (
        str(tmp_path / "order_service-1.sock"), str(tmp_path / "order_service-2.sock"))
    assert local_sockets.socket_path("/run/a6", "webhook_service", 3) \
        == "/run/a6/webhook_service-3.sock"


def test_a_socket_left_by_a_dead_process_is_removed(tmp_path):
    path = str(tmp_path / "svc-1.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens: what a killed process leaves
    local_sockets.claim(path)
    fresh = socket.socket(socket.AF_UNIX)
    fresh.bind(path)  # would fail with EADDRINUSE had the file stayed
    fresh.close()


def test_a_socket_a_live_process_listens_on_is_not_taken(tmp_path):
    path = str(tmp_path / "svc-1.sock")
    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen()
    try:
        with pytest.raises(local_sockets.SocketInUse):
            local_sockets.claim(path)
        assert (tmp_path / "svc-1.sock").exists()
    finally:
        live.close()


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path):
    path = tmp_path / "svc-1.sock"
    path.write_text("not mine")
    local_sockets.claim(str(path))
    assert path.read_text() == "not mine"


def test_the_directory_is_made_and_release_forgets_a_missing_file(tmp_path):
    path = str(tmp_path / "new" / "svc-1.sock")
    local_sockets.claim(path)
    assert (tmp_path / "new").is_dir()
    local_sockets.release(path)  # nothing there: no error
