"""API keys: read from an environment variable and/or a secret file, kept only as SHA-256 digests.

A key source holds one key per entry: ``secret`` or ``name:secret`` (the name is what logs, metrics and
per-key rate limits use; unnamed keys are called ``key-<first 8 hex of the digest>``). Lookups hash the
presented token and compare it with every stored digest using :func:`hmac.compare_digest`, never stopping
early, so the time taken does not tell which key (or how much of one) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_KEY_LEN = 512


class KeyStoreError(ValueError):
    """A key source is missing or malformed."""


def digest(secret: str) -> bytes:
    """SHA-256 digest of a key (the only form a key is kept in)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def parse_entries(entries: Iterable[str]) -> list[tuple[str, bytes]]:
    """Parse ``secret`` / ``name:secret`` entries into ``(name, digest)`` pairs.

    Blank entries and ``#`` comments are skipped. The secret is hashed at once and not kept.

    Raises:
        KeyStoreError: An entry with an empty secret or name, or a secret over 512 characters.
    """
    out: list[tuple[str, bytes]] = []
    for raw in entries:
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        name, sep, secret = entry.partition(":")
        if not sep:
            name, secret = "", entry
        name, secret = name.strip(), secret.strip()
        if not secret or (sep and not name):
            raise KeyStoreError("an API key entry has an empty name or secret")
        if len(secret) > MAX_KEY_LEN:
            raise KeyStoreError(f"an API key is longer than {MAX_KEY_LEN} characters")
        d = digest(secret)
        out.append((name or f"key-{d.hex()[:8]}", d))
    return out


class KeyStore:
    """The set of valid API keys, as digests.

    Args:
        entries: ``(name, digest)`` pairs (see :func:`parse_entries`).
    """

    def __init__(self, entries: Iterable[tuple[str, bytes]] = ()) -> None:
        self._entries: list[tuple[str, bytes]] = []
        seen: set[bytes] = set()
        for name, d in entries:
            if d not in seen:
                seen.add(d)
                self._entries.append((name, d))

    @classmethod
    def from_sources(cls, env_var: str | None = None, file: str | Path | None = None,
                     environ: dict[str, str] | None = None) -> KeyStore:
        """Load keys from ``$env_var`` (comma-separated) and/or ``file`` (one per line).

        Raises:
            KeyStoreError: The file is unreadable or an entry is malformed.
        """
        env = os.environ if environ is None else environ
        entries: list[tuple[str, bytes]] = []
        if env_var:
            entries += parse_entries(env.get(env_var, "").split(","))
        if file:
            path = Path(os.path.expandvars(str(file))).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise KeyStoreError(f"cannot read the API key file {path}: {exc.strerror}") from None
            entries += parse_entries(text.splitlines())
        store = cls(entries)
        logger.info("loaded %d API key(s) (%s)", len(store), ", ".join(store.names()) or "none")
        return store

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Names of the stored keys (never the keys)."""
        return [n for n, _ in self._entries]

    def lookup(self, token: str) -> str | None:
        """The name of the key equal to ``token``, or None; constant time in the key's content."""
        if not token or len(token) > MAX_KEY_LEN:
            return None
        d = digest(token)
        found: str | None = None
        for name, stored in self._entries:
            if hmac.compare_digest(d, stored) and found is None:
                found = name
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
