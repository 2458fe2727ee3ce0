"""Password protection for the pages edgeclf serves (the camera's web view, collect's page).

A page served off loopback needs a password unless the user says otherwise on purpose (--serve-open).
The password comes from EDGECLF_WEB_PASSWORD or a file only its owner can read (--serve-password-file;
under systemd, a credential the unit loads with LoadCredential=), never from the command line, where
`ps` and the shell history would show it. Browsers send it with HTTP basic auth (any user name); a
script may send it as a bearer token. Both are compared in constant time.
"""
from __future__ import annotations

import base64
import hmac
import ipaddress
import os
from http import HTTPStatus
from typing import Any, Mapping

from edgeclf.runtime.files import read_private_file

PASSWORD_ENV = "EDGECLF_WEB_PASSWORD"
MIN_PASSWORD_LENGTH = 8
REALM = "edgeclf"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a network address, so it is treated as one


def read_password_file(path: str | os.PathLike) -> str:
    """The password in `path` (files.read_private_file's rule: a regular file only its owner can read, not empty).

    Raises:
        ValueError: the file breaks the rule; the message names it and the fix.
    """
    return read_private_file(path, "--serve-password-file", "web view's password")


class WebAuth:
    """Who may see a served page: everyone (`password` None) or whoever sends the password.

    Use `WebAuth.for_serving(...)` to apply edgeclf's rule; `check(headers)` before serving anything and
    `challenge(handler)` to answer a request that failed it.
    """

    def __init__(self, password: str | None, realm: str = REALM) -> None:
        if password is not None and len(password) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"the web view's password must have at least {MIN_PASSWORD_LENGTH} characters; received "
                             f"{len(password)}. Use e.g. a random one: python3 -c 'import secrets; "
                             "print(secrets.token_urlsafe(16))'")
        self._secret = password.encode("utf-8") if password is not None else None
        self.realm = realm

    @property
    def required(self) -> bool:
        return self._secret is not None

    @classmethod
    def for_serving(cls, host: str, open_: bool = False, password_file: str | os.PathLike | None = None,
                    environ: Mapping[str, str] | None = None) -> "WebAuth":
        """The protection a page served on `host` gets.

        A password (from `password_file`, else $EDGECLF_WEB_PASSWORD) always applies when given. Without
        one, loopback is served openly, and any other address only with `open_` (--serve-open).

        Raises:
            ValueError: a non-loopback host without a password and without `open_`, or a bad password file.
        """
        environ = os.environ if environ is None else environ
        password = read_password_file(password_file) if password_file else environ.get(PASSWORD_ENV) or None
        if password is None and not open_ and not is_loopback(host):
            raise ValueError(
                f"--serve {host}: a web view on a network address needs a password, so that not everyone on the "
                f"network sees the camera. Set {PASSWORD_ENV}, or write it to a file (chmod 600) and pass "
                "--serve-password-file FILE; or pass --serve-open to serve it without one on purpose.")
        return cls(password)

    def check(self, headers: Any) -> bool:
        """True when no password is required, or `headers` (a mapping with .get) carry the right one as HTTP
        basic auth (any user name) or as `Authorization: Bearer <password>`."""
        if self._secret is None:
            return True
        value = headers.get("Authorization") or ""
        scheme, _, credentials = value.strip().partition(" ")
        offered = b""
        if scheme.lower() == "basic":
            try:
                offered = base64.b64decode(credentials.strip(), validate=True).partition(b":")[2]
            except (ValueError, TypeError):
                offered = b""
        elif scheme.lower() == "bearer":
            offered = credentials.strip().encode("utf-8", "replace")
        return hmac.compare_digest(offered, self._secret)

    def challenge(self, handler: Any) -> None:
        """Answers `handler` (a BaseHTTPRequestHandler) with 401 and a basic-auth challenge, and nothing else."""
        body = b"a password is needed to see this camera\n"
        handler.send_response(HTTPStatus.UNAUTHORIZED)
        handler.send_header("WWW-Authenticate", f'Basic realm="{self.realm}", charset="UTF-8"')
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        handler.wfile.write(body)
