"""Protection of phone numbers: encryption at rest and a keyed hash to find them.

Addresses are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under ``FARO_ENCRYPTION_KEYS``;
the first key encrypts and every listed key decrypts (``MultiFernet``), so a key is rotated by
putting the new key first and re-encrypting at leisure.  Lookups use an HMAC-SHA256 of the
normalized address under ``FARO_HASH_KEY``: equal addresses give equal hashes, and without the
key the hash reveals nothing that a dictionary of phone numbers could recover.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from campaigns.settings import Settings


class AddressCipher:
    def __init__(self, fernet_keys: list[str], hash_key: str) -> None:
        if not fernet_keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(k) for k in fernet_keys])
        self._primary = Fernet(fernet_keys[0])
        self._hash_key = hash_key.encode()

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressCipher:
        return _cached_cipher(tuple(settings.fernet_keys), settings.hash_key.get_secret_value())

    def encrypt(self, address: str) -> bytes:
        return self._primary.encrypt(address.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:  # pragma: no cover - only with a lost key
            raise ValueError("address cannot be decrypted with the configured keys") from exc

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the primary key (used by key rotation)."""
        return self._fernet.rotate(token)

    def is_current(self, token: bytes) -> bool:
        """Whether ``token`` is already encrypted under the primary (newest) key."""
        try:
            self._primary.decrypt(token)
        except InvalidToken:
            return False
        return True

    def lookup_hash(self, channel: str, address: str) -> str:
        return hmac.new(self._hash_key, f"{channel}:{address}".encode(), hashlib.sha256).hexdigest()

    def pseudonym(self, value: str) -> str:
        """A stable pseudonymous id for systems that must not see the number (Rasa)."""
        return hmac.new(self._hash_key, f"pseudonym:{value}".encode(), hashlib.sha256).hexdigest()[
            :32
        ]


@lru_cache(maxsize=4)
def _cached_cipher(keys: tuple[str, ...], hash_key: str) -> AddressCipher:
    return AddressCipher(list(keys), hash_key)
