"""``gan-edu serve-demo``: the browser demo (``web/``) and the shipped generators on 127.0.0.1.

    gan-edu serve-demo              # then open http://127.0.0.1:8000/?model=shapes_cdcgan

It serves, from a clone of the project, three folders and nothing else:

    /web/       web/ (the page: index.html, demo.js, gan.js)
    /exported/  exported/ (each NAME.onnx with its card NAME.json)
    /ort/       web/node_modules/onnxruntime-web/dist/ (installed by ``npm ci`` in web/)

and ``/`` sends the browser to ``/web/`` with the same query. Standard library only (no torch):
:class:`DemoServer` is also what the browser test starts, with ``on_report`` receiving what the
page posts to ``/report``.

What the server refuses: folder listings and hidden files (404), requests it cannot read (a NUL
in the path, a ``Content-Length`` that is not a number: 400), a body larger than a report (413).
Each connection is closed after :data:`CONNECTION_TIMEOUT` seconds of silence, so idle sockets
cannot hold threads for ever, and a client that leaves early is not reported as a traceback.
Bound to an address beyond this machine (``--host 0.0.0.0``), it says so on stderr.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import mimetypes
import socket
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..domains import Domain
from ..errors import GanEduError, check

#: Where onnxruntime-web's files are, under the project's root.
ORT_DIST = Path("web") / "node_modules" / "onnxruntime-web" / "dist"
#: Largest body the page may post to /report (a grid's pixels in base64).
MAX_REPORT_BYTES = 8_000_000
#: Seconds a connection may stay silent before the server closes it (a page's requests take milliseconds).
CONNECTION_TIMEOUT = 30.0
#: The ports a server can listen on (0: any free one).
PORT = Domain(int, lambda v: 0 <= v <= 65535, "a port in [0, 65535] (0: any free one)", "is not a port")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost), so the demo is not served to the network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: whatever it resolves to, it may be reachable from elsewhere
        return False


def project_root(root: Path | None = None) -> Path:
    """The folder that holds ``web/`` and ``exported/``: ``root``, else the working folder, else the clone gan_edu was installed from."""
    candidates = [root] if root is not None else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for folder in candidates:
        if folder is not None and (folder / "web" / "index.html").is_file():
            return folder.resolve()
    raise GanEduError(f"no web/index.html in {' or '.join(str(c) for c in candidates)}; expected a clone of gan-edu (or --root DIR)")


class DemoServer(ThreadingHTTPServer):
    """A threaded HTTP server of the demo's three folders.

    Args:
        root: the project's root (see :func:`project_root`).
        host, port: where to listen (port 0: a free one; read ``server_port``).
        on_report: called with each JSON object posted to ``/report`` (None: no ``/report``).
        files: extra files served as they are, URL path to bytes (a test's noise).
        connection_timeout: seconds of silence after which a connection is closed.
    """

    daemon_threads = True
    request_queue_size = 128  # connections waiting to be accepted (socketserver's 5 made a page's parallel requests wait)

    def __init__(
        self, root: Path, host: str = "127.0.0.1", port: int = 8000, *,
        on_report: Callable[[dict[str, Any]], None] | None = None, files: dict[str, bytes] | None = None,
        connection_timeout: float = CONNECTION_TIMEOUT,
    ) -> None:
        self.root = root
        self.mounts = {"/web/": root / "web", "/exported/": root / "exported", "/ort/": root / ORT_DIST}
        check((root / ORT_DIST).is_dir(), f"{root / ORT_DIST}: missing; expected onnxruntime-web installed there: run `npm ci` in {root / 'web'}")
        check(PORT.accepts(port), f"--port {port!r}: expected {PORT.expected}")
        self.on_report = on_report
        self.files = dict(files or {})
        self.connection_timeout = connection_timeout
        try:
            super().__init__((host, port), DemoHandler)
        except socket.gaierror as e:  # "Name or service not known"
            raise GanEduError(f"--host {host}: {e.strerror or e}; expected an address of this machine such as 127.0.0.1") from None
        except OSError as e:  # "Address already in use", "Cannot assign requested address", "Permission denied"
            raise GanEduError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); "
                              f"expected a free port on an address of this machine (--port 0 picks one)") from None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up or fell silent is not an error of the server: no traceback for it."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def start(self) -> threading.Thread:
        """Serve in a background thread (``shutdown()`` stops it)."""
        thread = threading.Thread(target=self.serve_forever, name="gan-edu-demo", daemon=True)
        thread.start()
        return thread


class DemoHandler(SimpleHTTPRequestHandler):
    server: DemoServer
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript", ".js": "text/javascript",
                      ".wasm": "application/wasm", ".onnx": "application/octet-stream", ".json": "application/json"}

    def setup(self) -> None:
        self.timeout = self.server.connection_timeout  # StreamRequestHandler puts it on the socket
        super().setup()

    def translate_path(self, path: str) -> str:
        """A URL path to a file inside one of the mounted folders; anything else (a hidden file, a
        path leading out) to a path that does not exist."""
        path = unquote(urlsplit(path).path)
        if "\0" in path or any(part.startswith(".") for part in path.split("/")):
            return str(self.server.root / "web" / "__not_served__")
        for prefix, folder in self.server.mounts.items():
            if path.startswith(prefix):
                if prefix == "/web/" and path[len(prefix):].split("/")[0] == "node_modules":
                    break  # web/node_modules is served only as /ort/ (onnxruntime-web's dist folder)
                candidate = (folder / path[len(prefix):]).resolve()
                if candidate == folder.resolve() or folder.resolve() in candidate.parents:
                    return str(candidate)
        return str(self.server.root / "web" / "__not_served__")

    def list_directory(self, path: Any) -> None:
        """No folder listings: a folder without index.html is not found."""
        self.send_error(HTTPStatus.NOT_FOUND)
        return None

    def malformed(self) -> bool:
        """Answer 400 to a request path the server cannot read (a NUL byte); True when it did."""
        if "\0" in unquote(self.path) or "\0" in self.path:
            self.send_error(HTTPStatus.BAD_REQUEST, "malformed path")
            return True
        return False

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.malformed():
            return
        parts = urlsplit(self.path)
        if parts.path == "/":
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", "/web/" + (f"?{parts.query}" if parts.query else ""))
            self.end_headers()
            return
        if parts.path in self.server.files:
            body = self.server.files[parts.path]
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", mimetypes.guess_type(parts.path)[0] or "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def do_HEAD(self) -> None:  # noqa: N802
        if self.malformed():
            return
        if urlsplit(self.path).path == "/":  # the same redirect as GET, without a body
            self.do_GET()
            return
        super().do_HEAD()

    def do_POST(self) -> None:  # noqa: N802
        if self.malformed():
            return
        if urlsplit(self.path).path != "/report" or self.server.on_report is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        text = self.headers.get("Content-Length") or ""
        if not text.strip().isdigit() or int(text) == 0:  # "abc", "-5", missing
            self.send_error(HTTPStatus.BAD_REQUEST, "expected a Content-Length of a positive number of bytes")
            return
        length = int(text)
        if length > MAX_REPORT_BYTES:
            self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        try:
            entry = json.loads(self.rfile.read(length))
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST)
            return
        self.server.on_report(entry)
        self.send_response(HTTPStatus.NO_CONTENT)
        self.end_headers()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")  # a re-exported model is never served stale
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        pass  # quiet: the command prints its address once


def register(sub: Any) -> None:
    p = sub.add_parser("serve-demo", help="serve the browser demo (web/) and the shipped generators on 127.0.0.1",
                       description="Serve web/, exported/ and onnxruntime-web on 127.0.0.1 (needs `npm ci` in web/ once).")
    p.add_argument("--port", type=PORT.parse, default=8000, help="port (default 8000; 0: any free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--root", type=Path, help="the project's folder (default: the working folder, else gan-edu's own clone)")
    p.add_argument("--model", default="shapes_cdcgan", help="the model the printed address opens (default shapes_cdcgan)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    server = DemoServer(project_root(args.root), args.host, args.port)
    if not is_loopback(args.host):
        print(f"warning: --host {args.host} serves the demo and exported/ to every machine that can reach this one; "
              "127.0.0.1 (the default) keeps it on this machine", file=sys.stderr, flush=True)
    print(f"gan-edu demo on http://{args.host}:{server.server_port}/?model={args.model} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
