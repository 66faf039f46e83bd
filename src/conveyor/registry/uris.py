"""Model URIs (``models:/name@alias``, ``models:/name/3``) and the names in them: plain
parsing, importable without the metadata store."""

from __future__ import annotations

import re
from typing import NamedTuple

from conveyor.foundation.errors import ConfigError
from conveyor.registry.errors import ModelNotFound as ModelNotFound  # re-exported: its old home

MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}")
ALIAS = re.compile(r"[a-z0-9_-]{1,64}")


class Uri(NamedTuple):
    name: str
    alias: str | None = None
    version: int | None = None  # neither: the latest version


def parse_uri(text: str) -> Uri:
    """``models:/name@alias``, ``models:/name/3``, ``models:/name``; also without the scheme
    (``name@alias``, ``name/3``) where a command takes a model."""
    body = text.removeprefix("models:/")
    if "@" in body:
        name, _, alias = body.partition("@")
        check_name(name)
        check_alias(alias)
        return Uri(name, alias=alias)
    name, slash, version = body.partition("/")
    check_name(name)
    if slash:
        if not version.isdigit() or int(version) < 1:
            raise ConfigError(f"{text}: a version is a whole number from 1", hint="models:/name/3")
        return Uri(name, version=int(version))
    return Uri(name)


def check_name(name: str) -> None:
    if not MODEL_NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a model name", hint="letters, digits, '_', '-' and '.'")


def check_alias(alias: str) -> None:
    if not ALIAS.fullmatch(alias):
        raise ConfigError(f"{alias!r} is not an alias", hint="lowercase letters, digits, _ and -")
