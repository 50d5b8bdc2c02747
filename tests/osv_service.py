"""An OSV-compatible vulnerability service for tests, on 127.0.0.1, holding real advisories.

uv 0.13's OSV client (found by pointing `uv audit --service-url` at a recording server)
sends ``POST /v1/querybatch`` with ``{"queries": [{"package": {"name", "ecosystem":
"PyPI"}, "version"}]}``, expects ``{"results": [{"vulns": [{"id", "modified"}]} | {}]}``
in the same order, then fetches each advisory with ``GET /v1/vulns/<id>`` (and caches it).

The advisories are PyPA advisory-database records (vulns/<package>/<id>.yaml), cut to
what uv reads: id, aliases, details, affected ranges, references, dates.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


def _advisory(id_: str, package: str, fixed: str, alias: str, details: str, url: str,
              published: str, modified: str) -> dict[str, Any]:
    return {
        "schema_version": "1.6.0", "id": id_, "aliases": [alias], "details": details,
        "published": published, "modified": modified,
        "affected": [{"package": {"ecosystem": "PyPI", "name": package,
                                  "purl": f"pkg:pypi/{package}"},
                      "ranges": [{"type": "ECOSYSTEM",
                                  "events": [{"introduced": "0"}, {"fixed": fixed}]}]}],
        "references": [{"type": "ADVISORY", "url": f"https://nvd.nist.gov/vuln/detail/{alias}"},
                       {"type": "WEB", "url": url}],
    }


ADVISORIES = [
    _advisory("PYSEC-2019-217", "jinja2", "2.10.1", "CVE-2019-10906",
              "In Pallets Jinja before 2.10.1, str.format_map allows a sandbox escape.",
              "https://palletsprojects.com/blog/jinja-2-10-1-released",
              "2019-04-07T00:29:00Z", "2021-11-22T04:57:52.862665Z"),
    _advisory("PYSEC-2018-28", "requests", "2.20.0", "CVE-2018-18074",
              "The Requests package before 2.20.0 for Python sends an HTTP Authorization "
              "header to an http URI upon receiving a same-hostname https-to-http redirect, "
              "which makes it easier for remote attackers to discover credentials by "
              "sniffing the network.", "https://github.com/requests/requests/issues/4716",
              "2018-10-09T17:29:00Z", "2021-06-16T00:03:24.800813Z"),
    _advisory("PYSEC-2019-133", "urllib3", "1.24.2", "CVE-2019-11324",
              "The urllib3 library before 1.24.2 for Python mishandles certain cases where "
              "the desired set of CA certificates is different from the OS store of CA "
              "certificates, which results in SSL connections succeeding in situations "
              "where a verification failure is the correct outcome.",
              "http://www.openwall.com/lists/oss-security/2019/04/19/1",
              "2019-04-18T21:29:00Z", "2019-09-14T18:15:00Z"),
]


def affects(advisory: dict[str, Any], name: str, version: str) -> bool:
    """OSV's rule for ECOSYSTEM ranges: introduced <= version < fixed (events in order)."""
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    for aff in advisory["affected"]:
        pkg = aff["package"]
        if pkg["ecosystem"] != "PyPI" or canonicalize_name(pkg["name"]) != canonicalize_name(name):
            continue
        if version in aff.get("versions", []):
            return True
        for rng in aff.get("ranges", []):
            inside = False
            for event in rng["events"]:
                if "introduced" in event:
                    inside = inside or event["introduced"] == "0" or v >= Version(
                        event["introduced"])
                elif "fixed" in event and v >= Version(event["fixed"]):
                    inside = False
                elif "last_affected" in event and v > Version(event["last_affected"]):
                    inside = False
            if inside:
                return True
    return False


@dataclass
class OsvService:
    """The service's state: its advisories and every request it answered."""

    advisories: list[dict[str, Any]] = field(default_factory=lambda: list(ADVISORIES))
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def queried(self) -> set[tuple[str, str]]:
        """(package, version) of every batch query received."""
        with self._lock:
            return {(q["package"]["name"], q["version"]) for method, path, body in self.requests
                    if path == "/v1/querybatch" for q in body["queries"]}

    def matching(self, name: str, version: str) -> list[dict[str, Any]]:
        return [a for a in self.advisories if affects(a, name, version)]

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        with self._lock:
            self.requests.append((method, path, body))
        if method == "POST" and path == "/v1/querybatch":
            return 200, {"results": [
                {"vulns": [{"id": a["id"], "modified": a["modified"]} for a in found]}
                if (found := self.matching(q["package"]["name"], q["version"])) else {}
                for q in body["queries"]]}
        if method == "POST" and path == "/v1/query":
            return 200, {"vulns": self.matching(body["package"]["name"], body["version"])}
        if method == "GET" and path.startswith("/v1/vulns/"):
            wanted = path.removeprefix("/v1/vulns/")
            for a in self.advisories:
                if a["id"] == wanted:
                    return 200, a
            return 404, {"code": 5, "message": "Bug not found."}
        return 404, {"code": 5, "message": "Not found."}


@contextmanager
def running_osv(service: OsvService | None = None) -> Iterator[OsvService]:
    """``service`` served on a free port of 127.0.0.1 until the block ends."""
    svc = service or OsvService()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            try:
                body = json.loads(raw) if raw else None
                status, doc = svc.answer(self.command, self.path.split("?", 1)[0], body)
            except (ValueError, KeyError, TypeError) as exc:
                status, doc = 400, {"code": 3, "message": f"bad request: {exc}"}
            out = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _serve

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    svc.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield svc
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
