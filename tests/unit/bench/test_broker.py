"""Finding the broker's pid by its listening port: /proc/net/tcp parsing, and a real socket."""

from __future__ import annotations

import os
import socket

from bench.broker import bootstrap_port, listener_pid, listening_inodes

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2384 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1
   1: 0100007F:2385 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1
   2: 0100007F:2384 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 4444 1
"""


def test_only_listening_sockets_of_the_port_count() -> None:
    # 0x2384 = 9092; the established connection (state 01) on the same port is not the listener.
    assert listening_inodes(PROC_NET_TCP, 9092) == {4242}
    assert listening_inodes(PROC_NET_TCP, 9093) == {4343}
    assert listening_inodes(PROC_NET_TCP, 9094) == set()


def test_the_listener_of_a_real_socket_is_found() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert listener_pid(port) == os.getpid()
    assert listener_pid(port) is None


def test_bootstrap_port_is_the_first_servers() -> None:
    assert bootstrap_port("127.0.0.1:19092,other:9092") == 19092
