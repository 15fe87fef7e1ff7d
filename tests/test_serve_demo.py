"""``gan-edu serve-demo``'s server against clients that misbehave: malformed requests, folder
listings, hidden files, idle connections, ports that are taken or do not exist, and an address
beyond this machine. (The page itself, in a browser, is tested in test_web.py.)"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from test_web import fake_root  # noqa: F401, F811  (the fixture)

from gan_edu.cli import main
from gan_edu.cli.serve_demo import DemoServer, is_loopback
from gan_edu.errors import GanEduError


@pytest.fixture
def root(fake_root: Path) -> Path:  # noqa: F811
    """test_web's project folder (web/, exported/m.json, onnxruntime-web, secret.txt beside them),
    with a hidden cache file and a link to the file outside."""
    (fake_root / "exported" / ".m.optimized-abc.onnx").write_bytes(b"a hidden cache")
    (fake_root / "exported" / "link.json").symlink_to(fake_root / "secret.txt")
    return fake_root


@pytest.fixture
def server(root: Path):
    posted: list = []
    server = DemoServer(root, port=0, on_report=posted.append, connection_timeout=0.5)
    server.posted = posted
    server.start()
    yield server
    server.shutdown()
    server.server_close()


def raw(server: DemoServer, request: bytes) -> bytes:
    """Send ``request`` as it is and read the whole answer (the server closes after one request)."""
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_malformed_requests_get_400_and_the_server_keeps_serving(server, capfd):
    assert status(raw(server, b"GET /web/%00 HTTP/1.0\r\n\r\n")) == 400
    assert status(raw(server, b"GET /exported/m%00.json HTTP/1.0\r\n\r\n")) == 400
    assert status(raw(server, b"HEAD /web/%00 HTTP/1.0\r\n\r\n")) == 400  # HEAD too, and HEAD / still redirects (test_web)
    for length in (b"abc", b"-5", b""):
        answer = raw(server, b"POST /report HTTP/1.0\r\nContent-Length: " + length + b"\r\n\r\n{}")
        assert status(answer) == 400, (length, answer)
    assert status(raw(server, b"POST /report HTTP/1.0\r\nContent-Length: 99999999999\r\n\r\n{}")) == 413
    assert server.posted == []
    answer = raw(server, b"GET /web/ HTTP/1.0\r\n\r\n")
    assert status(answer) == 200 and answer.endswith(b"<p>demo</p>")  # still serving
    assert "Traceback" not in capfd.readouterr().err


def test_no_folder_listings_no_hidden_files_no_links_out(server):
    for path in (b"/exported/", b"/ort/", b"/ort/../", b"/exported/.m.optimized-abc.onnx", b"/exported/link.json", b"/web/.%2e/secret.txt"):
        answer = raw(server, b"GET " + path + b" HTTP/1.0\r\n\r\n")
        assert status(answer) == 404, (path, answer[:200])
        assert b"optimized" not in answer and b"m.json" not in answer and b"not served" not in answer
    assert status(raw(server, b"GET /exported/m.json HTTP/1.0\r\n\r\n")) == 200


@pytest.mark.slow  # waits for the connection timeout
def test_an_idle_connection_is_closed_after_the_timeout_without_a_traceback(root, capfd):
    server = DemoServer(root, port=0, connection_timeout=2.0)
    server.start()
    before = threading.active_count()
    sockets = [socket.create_connection(("127.0.0.1", server.server_port), timeout=10) for _ in range(20)]
    deadline = time.monotonic() + 1.5
    while threading.active_count() < before + 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() >= before + 20  # one thread per connection, each waiting for a request
    start = time.monotonic()
    for s in sockets:
        answer = s.recv(100)  # blocks until the server hangs up (a silent server: socket.timeout after 10 s)
        assert answer == b"" or answer.startswith(b"HTTP/1."), answer  # closed, or a 408 on some Pythons
    assert time.monotonic() - start < 6  # after its 2 s timeout
    for s in sockets:
        s.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before  # the threads are gone
    half = socket.create_connection(("127.0.0.1", server.server_port), timeout=10)
    half.sendall(b"GET /web/ HTTP/1.0\r\n")  # a request left half sent, then the client leaves
    half.close()
    time.sleep(2.5)
    server.shutdown()
    server.server_close()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("argv", "names", "wants"),
    [
        (["serve-demo", "--port", "99999"], "--port: 99999 is not a port", "expected a port in [0, 65535]"),
        (["serve-demo", "--port", "-1"], "--port: -1 is not a port", "expected a port in [0, 65535]"),
        (["serve-demo", "--port", "http"], "--port: 'http' is not an int", "expected a port in [0, 65535]"),
    ],
    ids=["port-too-large", "port-negative", "port-not-a-number"],
)
def test_a_port_that_does_not_exist_is_one_line(argv, names, wants, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and names in err and wants in err, err


def test_a_taken_port_or_an_unknown_host_names_the_address(root):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(GanEduError, match=rf"--host 127.0.0.1 --port {port}: cannot listen there \(Address already in use\); expected a free port"):
            DemoServer(root, port=port)
    finally:
        taken.close()
    with pytest.raises(GanEduError, match=r"--host no-such-host\.invalid: .*; expected an address of this machine"):
        DemoServer(root, "no-such-host.invalid", 0)
    with pytest.raises(GanEduError, match=r"--port 99999: expected a port in \[0, 65535\]"):
        DemoServer(root, port=99999)


def test_an_address_beyond_this_machine_is_served_with_a_warning(root, monkeypatch, capsys):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.5.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.2") and not is_loopback("example.org")

    def stop(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(DemoServer, "serve_forever", stop)
    for host, warned in (("0.0.0.0", True), ("127.0.0.1", False)):
        assert main(["serve-demo", "--root", str(root), "--host", host, "--port", "0"]) == 0
        err = capsys.readouterr().err
        assert ("warning: --host 0.0.0.0 serves the demo and exported/ to every machine" in err) == warned, err
