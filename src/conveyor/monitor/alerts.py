"""Alert notifications: Alertmanager's webhook body, sent signed to the receivers of ``notify:``.

A receiver that already takes Alertmanager's webhooks (a chat bridge, an incident tool) takes
these unchanged: one POST per receiver per evaluation, the alerts that fired or resolved then
grouped in it, each with its labels (alertname, severity, env, model), its annotations (what
was observed against what) and a fingerprint that names the alert across notifications.

    body = alertmanager("ops", [Notice(...)], external_url="")       # pure
    notifier = Notifier(monitor); notifier.send([...]); notifier.close()

Delivery is :class:`conveyor.monitor.webhooks.Sender`'s: Standard Webhooks signatures (with
``secret_env``), retried with backoff in a background thread, a bounded queue; a receiver that
is down never holds up monitoring.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from conveyor.foundation.errors import ConveyorError
from conveyor.monitor.config import Monitor
from conveyor.monitor.rules import Rule, Transition

log = logging.getLogger(__name__)
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "not ended"
EVENT = "alert"


@dataclass(frozen=True)
class Notice:
    """An alert that changed: the rule, the transition, and what was done about it."""

    env: str
    model: str
    rule: Rule
    transition: Transition
    action: str = ""  # what its action did ("retrain started", "rolled back to 3"), if any

    @property
    def labels(self) -> dict[str, str]:
        return {
            "alertname": self.rule.name,
            "severity": self.rule.severity,
            "env": self.env,
            "model": self.model,
        }

    @property
    def fingerprint(self) -> str:
        text = "\x00".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def alertmanager(
    receiver: str, notices: Sequence[Notice], external_url: str = ""
) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) for ``notices`` sent to ``receiver``."""
    alerts = [_alert(n, external_url) for n in notices]
    labels = [n.labels for n in notices]
    common = {k: v for k, v in labels[0].items() if all(x.get(k) == v for x in labels)}
    grouped = {k: common[k] for k in ("env", "model") if k in common}
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": "{}:" + "{" + ",".join(f'{k}="{v}"' for k, v in grouped.items()) + "}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": grouped,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": external_url,
        "alerts": alerts,
    }


def _alert(notice: Notice, external_url: str) -> dict[str, Any]:
    moved = notice.transition
    firing = moved.to == "firing"
    condition = notice.rule.condition
    summary = (
        f"{notice.rule.name}: {condition.metric} is {moved.value:.4g} ({condition})"
        if firing
        else f"{notice.rule.name} resolved: {condition.metric} is {moved.value:.4g}"
    )
    annotations = {
        "summary": summary,
        "value": f"{moved.value:.6g}",
        "condition": str(condition),
        "for": str(notice.rule.hold),
    }
    if math.isnan(moved.value):  # an action's outcome (Watch.announce), not an observation
        annotations = {"summary": notice.action}
    if moved.window:
        annotations["window"] = moved.window
    if notice.rule.action:
        annotations["action"] = notice.rule.action
    if notice.action:
        annotations["action_result"] = notice.action
    return {
        "status": moved.to,
        "labels": notice.labels,
        "annotations": annotations,
        "startsAt": _time(moved.since),
        "endsAt": ZERO_TIME if firing else _time(moved.at),
        "generatorURL": external_url,
        "fingerprint": notice.fingerprint,
    }


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _render(event: str, payload: Mapping[str, Any], when: float) -> bytes:
    return orjson.dumps(payload)


class Notifier:
    """One sender per receiver of ``notify:``; a receiver whose secret is not set is left out
    with a warning (an alert must not wait for a webhook's configuration)."""

    def __init__(self, spec: Monitor, environ: Mapping[str, str] | None = None, **sender: Any):
        from conveyor.monitor.webhooks import Hook, Sender, resolve

        self.senders: dict[str, Sender] = {}
        for name, receiver in spec.notify.items():
            config = _HookConfig(receiver.webhook, (EVENT,), receiver.secret_env or "")
            try:
                hook: Hook = resolve(config, environ)
            except ConveyorError as exc:
                log.warning("monitor %s: receiver %s left out: %s", spec.env, name, exc)
                continue
            self.senders[name] = Sender([hook], render=_render, **sender)

    def send(self, notices: Iterable[Notice]) -> int:
        """Queue one body per receiver for the notices it is named in; how many bodies."""
        by_receiver: dict[str, list[Notice]] = {}
        for notice in notices:
            for name in notice.rule.notify:
                by_receiver.setdefault(name, []).append(notice)
        queued = 0
        for name, group in by_receiver.items():
            sender = self.senders.get(name)
            if sender is not None:
                sender.send(EVENT, alertmanager(name, group))
                queued += 1
        return queued

    def close(self, timeout: float = 5.0) -> None:
        for sender in self.senders.values():
            sender.close(timeout)


@dataclass(frozen=True)
class _HookConfig:
    url: str
    events: tuple[str, ...]
    secret_env: str
