"""Serve one greeting over HTTP (standard library only)."""

import argparse
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from greeter import greet


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{greet('mono')} uid={os.getuid()} python={sys.executable}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(prog="mono_server")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--once", action="store_true", help="print the greeting and exit")
    args = parser.parse_args()
    if args.once:
        print(greet("mono"))
        return
    HTTPServer(("0.0.0.0", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
