"""``gan-edu serve-demo``: the browser demo (``web/``) and the shipped generators on 127.0.0.1.

    gan-edu serve-demo              # then open http://127.0.0.1:8000/?model=shapes_cdcgan

It serves, from a clone of the project, three folders and nothing else:

    /web/       web/ (the page: index.html, demo.js, gan.js)
    /exported/  exported/ (each NAME.onnx with its card NAME.json)
    /ort/       web/node_modules/onnxruntime-web/dist/ (installed by ``npm ci`` in web/)

and ``/`` sends the browser to ``/web/`` with the same query. Standard library only (no torch):
:class:`DemoServer` is also what the browser test starts, with ``on_report`` receiving what the
page posts to ``/report``.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import GanEduError, check
from .args import non_negative_int

#: Where onnxruntime-web's files are, under the project's root.
ORT_DIST = Path("web") / "node_modules" / "onnxruntime-web" / "dist"
#: Largest body the page may post to /report (a grid's pixels in base64).
MAX_REPORT_BYTES = 8_000_000


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
    """

    daemon_threads = True

    def __init__(
        self, root: Path, host: str = "127.0.0.1", port: int = 8000, *,
        on_report: Callable[[dict[str, Any]], None] | None = None, files: dict[str, bytes] | None = None,
    ) -> None:
        self.root = root
        self.mounts = {"/web/": root / "web", "/exported/": root / "exported", "/ort/": root / ORT_DIST}
        check((root / ORT_DIST).is_dir(), f"{root / ORT_DIST}: missing; expected onnxruntime-web installed there: run `npm ci` in {root / 'web'}")
        self.on_report = on_report
        self.files = dict(files or {})
        super().__init__((host, port), DemoHandler)

    def start(self) -> threading.Thread:
        """Serve in a background thread (``shutdown()`` stops it)."""
        thread = threading.Thread(target=self.serve_forever, name="gan-edu-demo", daemon=True)
        thread.start()
        return thread


class DemoHandler(SimpleHTTPRequestHandler):
    server: DemoServer
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript", ".js": "text/javascript",
                      ".wasm": "application/wasm", ".onnx": "application/octet-stream", ".json": "application/json"}

    def translate_path(self, path: str) -> str:
        """A URL path to a file inside one of the mounted folders; anything else to a path that does not exist."""
        path = unquote(urlsplit(path).path)
        for prefix, folder in self.server.mounts.items():
            if path.startswith(prefix):
                if prefix == "/web/" and path[len(prefix):].split("/")[0] == "node_modules":
                    break  # web/node_modules is served only as /ort/ (onnxruntime-web's dist folder)
                candidate = (folder / path[len(prefix):]).resolve()
                if candidate == folder.resolve() or folder.resolve() in candidate.parents:
                    return str(candidate)
        return str(self.server.root / "web" / "__not_served__")

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
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
        if urlsplit(self.path).path == "/":  # the same redirect as GET, without a body
            self.do_GET()
            return
        super().do_HEAD()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if urlsplit(self.path).path != "/report" or self.server.on_report is None or not 0 < length <= MAX_REPORT_BYTES:
            self.send_error(HTTPStatus.NOT_FOUND)
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
    p.add_argument("--port", type=non_negative_int, default=8000, help="port (default 8000; 0: any free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--root", type=Path, help="the project's folder (default: the working folder, else gan-edu's own clone)")
    p.add_argument("--model", default="shapes_cdcgan", help="the model the printed address opens (default shapes_cdcgan)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    server = DemoServer(project_root(args.root), args.host, args.port)
    print(f"gan-edu demo on http://{args.host}:{server.server_port}/?model={args.model} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
