"""Secrets in settings: which ones are, and how they are shown (pure).

A secret is a password inside a URL (``postgresql://user:PASSWORD@host/db``) or the value of a
key whose name says it is one (``*secret*``, ``*password*``, ``*token*``...) or that holds a
remote's credentials (``remote.NAME.key``). Secrets never go into the committed
``.conveyor/config``, and are never printed: a URL keeps its user and host and loses its
password (``postgresql://user:***@host/db``), a secret key's value is ``***``.

>>> mask_urls("cannot open postgresql://me:pw@db:5432/runs")
'cannot open postgresql://me:***@db:5432/runs'
>>> secret_key("remote.s3.secret_access_key"), secret_key("core.jobs")
(True, False)
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# The user part has no ':', '/' or '@'; the password runs to the last '@' of the URL: an
# unescaped '@' or '/' in a password (an AWS secret key holds '/') must not leave its tail on
# show. A port and a path (``host:8080/a@b``) is no password.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/:@\s]*):(?!\d{1,5}(?:[/?#\s]|$))\S*@"
)
_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "private_key",
    "account_key",
    "access_key",
    "api_key",
    "apikey",
    "connection_string",
)
# A secret as a URL's query parameter (``?password=``, Azure's SAS ``sig=``, S3's presigned
# ``X-Amz-Signature=``) or a ``password=`` word of a libpq connection string: its value goes.
# Elsewhere only that exact word: an error naming ``train.max_tokens=512`` keeps its value.
_WORDS = "|".join(w.replace("_", "[_-]?") for w in (*_SECRET_WORDS, "signature"))
_PARAM_SECRET = re.compile(
    rf"(?P<head>(?:(?<=[?&;])(?:[\w.-]*?(?:{_WORDS})[\w.-]*|sig)|(?:^|(?<=\s))password)=)"
    r"[^&#;\s]+",
    re.IGNORECASE,
)
# fsspec's names for a remote's access key (s3fs: key, secret, token), which say no "secret".
_REMOTE_CREDENTIALS = ("key", "access_key", "access_key_id", "aws_access_key_id", "sas")
# Values a secret-named option takes that name a way to find credentials, not credentials
# (gcsfs's token: anon, google_default, cloud...): they may be committed and shown.
_MODES = frozenset({"anon", "google_default", "cloud", "cache", "browser", "true", "false"})


def url_has_password(value: Any) -> bool:
    """Whether ``value`` holds a URL's password, or a secret parameter (``?password=...``)."""
    return isinstance(value, str) and (
        _URL_PASSWORD.search(value) is not None or _PARAM_SECRET.search(value) is not None
    )


def mask_urls(text: str) -> str:
    """``text`` with the password of every URL in it, and every secret parameter's value,
    replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _PARAM_SECRET.sub(lambda m: f"{m['head']}{MASK}", text)


def secret_key(dotted: str) -> bool:
    """Whether a setting's name says its value is a secret."""
    name = dotted.rsplit(".", 1)[-1].lower().replace("-", "_")
    if any(word in name for word in _SECRET_WORDS):
        return True
    return dotted.startswith("remote.") and name in _REMOTE_CREDENTIALS


def secret(dotted: str, value: Any) -> bool:
    """Whether ``dotted = value`` holds a secret: by its key's name, or a URL's password."""
    named = secret_key(dotted) and value not in (None, "") and str(value).lower() not in _MODES
    return named or url_has_password(value)


def shown(dotted: str, value: Any) -> str:
    """``value`` as it may be printed."""
    return MASK if secret(dotted, value) and not url_has_password(value) else mask_urls(str(value))
