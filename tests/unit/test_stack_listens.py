"""testkit.stack.listens: how a WORKERS=N stack knows every replica holds its port."""

import os
import socket

from testkit.stack import listens


def test_a_listening_socket_is_seen_and_a_merely_bound_one_is_not():
    with socket.socket() as listening, socket.socket() as bound:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        bound.bind(("127.0.0.1", 0))
        assert listens(os.getpid(), listening.getsockname()[1])
        assert not listens(os.getpid(), bound.getsockname()[1])


def test_another_process_does_not_count_as_listening():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert not listens(os.getppid(), listening.getsockname()[1])
