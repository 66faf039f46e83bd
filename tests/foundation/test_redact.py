"""Which settings are secrets, and how they are printed (pure)."""

from __future__ import annotations

import pytest

from conveyor.foundation import redact


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://user:PASSWORD@host/db", "postgresql://user:***@host/db"),
        ("postgres://u:p%40ss@h:5432/d?ssl=1", "postgres://u:***@h:5432/d?ssl=1"),
        ("https://u:p@ss@example.invalid/x", "https://u:***@example.invalid/x"),  # raw '@'
        ("redis://:pw@h/0", "redis://:***@h/0"),
        ("opening ssh://me:pw@h/p and s3://b/k", "opening ssh://me:***@h/p and s3://b/k"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),  # no password: as is
        ("ssh://host:22/path", "ssh://host:22/path"),
        ("ssh://git@host:22/path", "ssh://git@host:22/path"),
        ("sqlite:////tmp/a@b/x.db", "sqlite:////tmp/a@b/x.db"),
    ],
)
def test_mask_urls(text: str, shown: str) -> None:
    assert redact.mask_urls(text) == shown
    assert redact.url_has_password(text) == (text != shown)


@pytest.mark.parametrize(
    ("key", "is_secret"),
    [
        ("remote.s3.secret_access_key", True),
        ("remote.s3.key", True),  # s3fs's access key id
        ("remote.s3.token", True),
        ("remote.az.account_key", True),
        ("remote.az.connection_string", True),
        ("remote.ssh.password", True),
        ("db.password", True),
        ("remote.s3.endpoint_url", False),
        ("remote.s3.url", False),
        ("core.jobs", False),
        ("cache.type", False),
    ],
)
def test_secret_keys(key: str, is_secret: bool) -> None:
    assert redact.secret_key(key) is is_secret


def test_shown() -> None:
    assert redact.shown("remote.s3.secret", "abc") == "***"
    assert redact.shown("db.url", "postgresql://a:b@h/d") == "postgresql://a:***@h/d"
    assert redact.shown("core.jobs", 8) == "8"
    # A way to find credentials is no credential: gcsfs's token modes may be committed.
    assert not redact.secret("remote.gcs.token", "anon")
    assert redact.shown("remote.gcs.token", "google_default") == "google_default"
    assert redact.secret("remote.gcs.token", "/home/me/creds.json")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg://u:***@h/db"),
        # An AWS secret access key holds '/' and '+': all of it goes.
        ("s3://AKIAEXAMPLE:wJal/K7MDENG+bPx@bucket/k", "s3://AKIAEXAMPLE:***@bucket/k"),
        (
            "postgresql://u@h/db?sslmode=require&password=hunter2",
            "postgresql://u@h/db?sslmode=require&password=***",
        ),
        (
            "https://a.invalid/c?sv=2020&sig=abc%2Fdef&se=1",
            "https://a.invalid/c?sv=2020&sig=***&se=1",
        ),
        (
            "https://s3.invalid/x?X-Amz-Signature=dead&a=1",
            "https://s3.invalid/x?X-Amz-Signature=***&a=1",
        ),
        ("host=h user=u password=pw dbname=d", "host=h user=u password=*** dbname=d"),
        ("param train.max_tokens=512 is no number", "param train.max_tokens=512 is no number"),
        ("https://host:8080/a@b", "https://host:8080/a@b"),  # a port and a path: no password
        ("postgresql://h/d?sslkey=/k.pem&design=x", "postgresql://h/d?sslkey=/k.pem&design=x"),
    ],
)
def test_mask_urls_finds_every_form_of_a_password(text: str, shown: str) -> None:
    assert redact.mask_urls(text) == shown
    assert redact.url_has_password(text) == (text != shown)
