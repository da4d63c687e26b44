"""The test servers themselves (issue 17, finding 17): a stopped server must take no
connection of a later one. `test_default_store_master_found_from_another_directory` failed
at random under load with "1 ok, 1 failed": one image got `HTTP 404` with the headers of a
RawServer stopped minutes before, in the first tests of the run. Its accept thread was
still blocked in accept() when stop() closed the socket; the image server's socket later
got the same descriptor number, and a syscall restart (here SIGSTOP/SIGCONT, which a busy
machine's scheduler and sandbox also cause) put that thread into accept() on it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import os, socket, sys, threading, time
sys.path.insert(0, sys.argv[1])
from tests.rawserver import RawServer
stopped = RawServer().start()
time.sleep(0.2)  # its accept thread is now blocked in accept()
number = stopped.sock.fileno()
stopped.stop()
later = socket.socket()
later.bind(("127.0.0.1", 0))
later.listen(5)
if later.fileno() != number:  # what the next socket opened gets anyway: the freed number
    os.dup2(later.fileno(), number)
def serve():
    while True:
        conn, _ = later.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n")
        conn.close()
threading.Thread(target=serve, daemon=True).start()
accepting = any("_accept" in t.name for t in threading.enumerate())  # Thread-N (_accept)
print(later.getsockname()[1], accepting, flush=True)
time.sleep(60)
"""


def status_line(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /img/61x43.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return conn.recv(200).split(b"\r\n")[0].decode()


def test_a_stopped_raw_server_takes_no_connection_of_a_later_server() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ROOT)], stdout=subprocess.PIPE, text=True
    )
    try:
        port_text, accepting = child.stdout.readline().split()  # type: ignore[union-attr]
        os.kill(child.pid, signal.SIGSTOP)  # a blocked accept() is restarted on SIGCONT,
        time.sleep(0.1)  # with the descriptor number it was given
        os.kill(child.pid, signal.SIGCONT)
        time.sleep(0.2)
        assert [status_line(int(port_text)) for _ in range(3)] == ["HTTP/1.1 200 OK"] * 3
        assert accepting == "False", "stop() returned with its accept thread still running"
    finally:
        child.kill()
        child.wait()
