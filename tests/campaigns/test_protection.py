"""Settings refuse unsafe production; numbers are normalized, encrypted, rotatable, findable."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from campaigns.crypto import AddressCipher
from campaigns.errors import InvalidInput
from campaigns.phones import parse_mobile
from campaigns.settings import ConfigurationError, Settings


def test_production_refuses_development_secrets_and_plain_http() -> None:
    with pytest.raises(ConfigurationError) as exc:
        Settings(env="production", public_url="http://faro.example").check_production()
    message = str(exc.value)
    for needle in (
        "FARO_SECRET_KEY",
        "FARO_ENCRYPTION_KEYS",
        "FARO_HASH_KEY",
        "https://",
        "FARO_DATABASE_URL",
    ):
        assert needle in message


def test_production_with_real_secrets_starts() -> None:
    Settings(
        env="production",
        public_url="https://faro.example.org",
        secret_key="k8Zq2vLr9TxW4mNp7QsY1uEa6DcHb3Jf0GiO",
        encryption_keys=Fernet.generate_key().decode(),
        hash_key="Hq7Lm2Zx9Pw4Ck8Rv1Tn6Ys3Ub0Ed5Fg2Ji7",
        actions_token="Ac7Tn2Kx9Qw4Lm8Pz1Rv6Ys3Ub0Ed5Fg2Ji",
        database_url="postgresql+psycopg://faro@db/faro",
        redis_url="redis://redis:6379/0",
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="t" * 32,
    ).check_production()


def test_production_refuses_placeholder_secrets_and_the_simulator() -> None:
    with pytest.raises(ConfigurationError) as exc:
        Settings(
            env="production",
            public_url="https://faro.example.org",
            secret_key="change-me",
            hash_key="change-me",
            encryption_keys=Fernet.generate_key().decode(),
            database_url="postgresql+psycopg://faro@db/faro",
            redis_url="redis://redis:6379/0",
        ).check_production()
    assert "FARO_SECRET_KEY must be a random value" in str(exc.value)
    assert "FARO_TWILIO_ACCOUNT_SID" in str(exc.value)


def test_malformed_encryption_key_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="Fernet keys"):
        Settings(encryption_keys="not-a-key")


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+5215512345678", None, "+525512345678"),  # WhatsApp's old Mexican mobile prefix
        ("whatsapp:+50931234567", None, "+50931234567"),
        ("55 1234 5678", "MX", "+525512345678"),
        ("(502) 5512-3456", None, None),
        ("+502 5512 3456", None, "+50255123456"),
    ],
)
def test_numbers_normalize_to_e164(raw: str, country: str | None, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidInput):
            parse_mobile(raw, default_country=country)
    else:
        assert parse_mobile(raw, default_country=country).e164 == expected


def test_key_rotation_keeps_old_ciphertexts_readable() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = AddressCipher([old], "hash-key")
    token = before.encrypt("+50931234567")
    after = AddressCipher([new, old], "hash-key")
    assert after.decrypt(token) == "+50931234567"
    rotated = after.rotate(token)
    assert AddressCipher([new], "hash-key").decrypt(rotated) == "+50931234567"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        AddressCipher([Fernet.generate_key().decode()], "hash-key").decrypt(token)


def test_lookup_hash_is_keyed_and_channel_specific() -> None:
    key = Fernet.generate_key().decode()
    a = AddressCipher([key], "one key")
    b = AddressCipher([key], "another key")
    assert a.lookup_hash("whatsapp", "+50931234567") == a.lookup_hash("whatsapp", "+50931234567")
    assert a.lookup_hash("whatsapp", "+50931234567") != b.lookup_hash("whatsapp", "+50931234567")
    assert a.lookup_hash("sms", "+50931234567") != a.lookup_hash("whatsapp", "+50931234567")
    assert "50931234567" not in a.pseudonym("+50931234567")
