"""The harness is not a weapon: targets must be this machine unless the user opts out."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeTarget(ValueError):
    """The target is not on this machine (or not a usable URL) and no opt-in was given."""


def loopback_only(url: str, allow_remote: bool = False) -> str:
    """Return ``url`` if every address its host resolves to is loopback (or if allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(f"target must be an http(s) URL with a host, got {url!r}")
    if allow_remote:
        return url.rstrip("/")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeTarget(f"cannot resolve {parts.hostname!r}: {exc}") from None
    addresses = {str(info[4][0]) for info in infos}
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if remote:
        raise UnsafeTarget(
            f"target {parts.hostname!r} resolves to {', '.join(remote)}, not loopback;"
            " brink only loads this machine unless given --allow-remote"
        )
    return url.rstrip("/")
