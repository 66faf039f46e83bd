"""Placeholder: filled in by the remote_cmds work."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
