"""Browser-facing protections of the service (a pure ASGI middleware, so streamed downloads pass through).

- **Host check** (DNS rebinding): the ``Host`` header must name the bound address, a loopback name or a
  configured extra host; a page on ``evil.example`` whose DNS later points at 127.0.0.1 gets ``400``.
- **Cross-origin writes** (CSRF): a POST/PUT/PATCH/DELETE whose ``Origin`` (or, without it, ``Referer``)
  is not this server gets ``403``. Browsers always send one of them on cross-site form posts and
  fetches; scripts and curl send neither and are unaffected (the API key protects those).
- **Headers on every response**: Content-Security-Policy (this server only), ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI at /docs starts itself with an inline script (and loads from a CDN without the local bundle).
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
_STATIC_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


@dataclass(frozen=True)
class HostPolicy:
    """Host names accepted in the ``Host`` header; ``any_ip`` accepts IP literals too (wildcard binds:
    DNS rebinding needs a host *name*, so an IP literal is a direct visit)."""

    names: frozenset[str]
    any_ip: bool = False

    def allows(self, name: str) -> bool:
        return name in self.names or (self.any_ip and _is_ip(name))


def host_policy(bound: str, extra: Iterable[str] = ()) -> HostPolicy | None:
    """The accepted hosts for a server bound to *bound*: loopback names, the bound address and *extra*
    (``None``, meaning any host, when *extra* holds ``*``). A wildcard bind (0.0.0.0, ::) also accepts
    this machine's names and any IP literal."""
    names = {n.strip().lower().strip("[]") for n in extra if n.strip()}
    if "*" in names:
        return None
    names.update(LOOPBACK_NAMES)
    names.add(bound.strip().lower().strip("[]"))
    wildcard = bound.strip() in WILDCARD_HOSTS
    if wildcard:
        names.update({socket.gethostname().lower(), socket.getfqdn().lower()})
    return HostPolicy(frozenset(n for n in names if n), any_ip=wildcard)


def _split_host(value: str) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit("//" + value)
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _same_origin(source: str, host: str, scheme: str) -> bool:
    """True when the Origin/Referer URL *source* points at the server reached through *host*."""
    try:
        parts = urlsplit(source)
        src_port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    default = {"http": 80, "https": 443}
    name, port = _split_host(host)
    return (parts.hostname, src_port or default[parts.scheme]) == (name, port or default.get(scheme, 80))


class SecurityMiddleware:
    """Host check, cross-origin write check and security headers (see the module docstring)."""

    def __init__(self, app: ASGIApp, hosts: HostPolicy | None, docs_path: str = "/docs") -> None:
        self.app = app
        self.hosts = hosts
        self.docs_path = docs_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self._problem(scope, headers)
        csp = DOCS_CSP if scope.get("path") == self.docs_path else CSP
        extra = [(b"content-security-policy", csp.encode()), *_STATIC_HEADERS]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        if problem is not None:
            status, text = problem
            await _json_response(send_with_headers, status, text)
            return
        await self.app(scope, receive, send_with_headers)

    def _problem(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        name, _ = _split_host(host)
        if name is None:
            return 400, "missing or malformed Host header"
        if self.hosts is not None and not self.hosts.allows(name):
            return 400, (
                f"host '{name[:100]}' is not served here (start the server with --allowed-host {name[:100]} "
                "if this name is meant to reach it)"
            )
        if scope.get("method", "GET").upper() not in UNSAFE_METHODS:
            return None
        source = headers.get("origin") or headers.get("referer")
        if source is None:
            return None  # not a browser: scripts and curl send neither header
        if not _same_origin(source, host, scope.get("scheme", "http")):
            return 403, f"cross-origin request refused (origin {source[:100]!r} is not this server)"
        return None


async def _json_response(send: Send, status: int, text: str) -> None:
    body = json.dumps({"error": text}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


API_KEY_MESSAGE = "missing or wrong API key (send it in the X-API-Key header)"


def api_key_ok(request: Any) -> bool:
    """True when the app (``request.app.state.ctx.settings.api_key``) has no key or the request's
    ``X-API-Key`` matches it (constant-time comparison)."""
    import hmac

    key = request.app.state.ctx.settings.api_key
    if not key:
        return True
    given = request.headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), key.encode())
