"""Monitoring one environment: the prediction log read as it grows, folded into windows, each
closed window checked against the reference, labels joined as they come, alerts fired and
resolved, receivers notified and actions taken.

    watch = Watch(root, spec, model="classifier", predictions=..., feedback=...)
    tick = watch.tick()          # read what is new, close due windows, evaluate, alert
    watch.status()               # the latest checks, a table's rows

Everything a tick learns is kept under ``.conveyor/monitor/<env>/``:

    references/<sha256>.json  each reference's bins and profile, made once per content
    state.json                where the log was read to, the open windows, the alerts' states
    windows/<version>/<n>.json  each closed window: its profile and its checks
    events.jsonl              alerts fired and resolved, and what their actions did

``state.json`` is written (temp file, fsync, rename) after the closed windows' files, so a
monitor killed at any point starts again from the last state written: the lines read since are
read again into the same open windows, and a window closed again is written again to the same
file, never counted twice. Labels are joined (:class:`~conveyor.monitor.joiner.Joiner`) from
the start of the log at each start of the monitor: they are few, and a window's quality keeps
changing as late labels come.

Actions (``retrain``, ``rollback``) are callables given by the layer that owns them (a monitor
does not import the pipeline or the deploy controller); a failing action, receiver or model
never stops the loop: it is logged and recorded as the alert's action result.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import operator
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import orjson

from conveyor.foundation.atomic import write_bytes
from conveyor.foundation.errors import ConveyorError, DataError
from conveyor.monitor import predlog, rules, segments
from conveyor.monitor.alerts import Notice, Notifier
from conveyor.monitor.config import Monitor
from conveyor.monitor.profiles import NumericBins
from conveyor.monitor.reference import (
    MonitorError,
    Reference,
    folder,
    reference,
    seen,
    stored_reference,
)
from conveyor.monitor.windows import Batch, Check, Quality, Window, Windows, evaluate, quality_check

log = logging.getLogger(__name__)
STATE_FORMAT = 1
# What an action is given: the alert that fired, and a way to tell the alert's receivers later
# how it ended (severity, text): a retrain runs for minutes, its outcome comes after the tick.
Announce = Callable[[str, str], None]
Action = Callable[[Notice, Announce], str]


@dataclass(frozen=True)
class Saved:
    """What the last tick of an environment's monitor left: when, its checks, its alerts."""

    at: float
    checks: list[Check]
    alerts: dict[str, rules.AlertState]


def saved(root: Path, env: str) -> Saved | None:
    """The last state a monitor of ``env`` wrote (read without taking it over), or None."""
    try:
        state = orjson.loads((folder(root, env) / "state.json").read_bytes())
        return Saved(
            float(state.get("at", 0.0)),
            [Check(**c) for c in state.get("checks", [])],
            {k: rules.AlertState(**v) for k, v in state.get("alerts", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ------------------------------------------------------------------------------------ watch


@dataclass
class Tick:
    """What one look at the log did."""

    read: int = 0  # records read
    closed: list[Window] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)  # the current checks (status)
    notices: list[Notice] = field(default_factory=list)  # alerts that fired or resolved


class Watch:
    """Monitoring of one environment (see the module). Not thread-safe: one loop ticks it."""

    def __init__(
        self,
        root: Path,
        spec: Monitor,
        *,
        model: str,
        predictions: Path,
        feedback: Path,
        roles: Callable[[], Mapping[str, str]] | None = None,
        server: Callable[[], Mapping[str, float | None]] | None = None,
        actions: Mapping[str, Action] | None = None,
        notifier: Notifier | None = None,
        columns: Callable[[str], tuple[str, ...] | None] | None = None,
        scorer: Callable[[str], Callable[[Any], Any] | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.spec = spec
        self.model = model
        self.folder = folder(root, spec.env)
        self.roles = roles or (lambda: {})
        self.server = server
        self.actions = dict(actions or {})
        self.notifier = notifier
        self.columns = columns or (lambda version: None)
        self.scorer = scorer or (lambda version: None)
        self.clock = clock
        self.reference = reference(root, spec, model)
        self.schema = _schema(root, spec)  # the data gate's, when schema: names it
        self._seen = seen(root, spec, model)  # the reference's marker when last read
        self.windows = self._windows(self.reference)
        self.alerts: dict[str, rules.AlertState] = {r.name: rules.AlertState() for r in spec.alerts}
        self._log = segments.Tail(predlog.model_folder(predictions, model))
        self._between = Tick()  # what catch_up did since the last look
        self._starts: dict[str, list[tuple[float, int]]] = {}  # row windows: version -> starts
        self._kept: dict[str, list[int]] = {}  # version -> its closed windows' numbers, sorted
        self.last: list[Check] = []  # the checks of the last tick
        self._restore()
        from conveyor.monitor.joiner import Joiner

        self._joiner = Joiner(
            predlog.model_folder(predictions, model), feedback, group=self._window_of
        )

    # -- one look -------------------------------------------------------------------------

    def tick(self) -> Tick:
        """One look (see the module). A look that fails part way (a window that cannot be
        judged, a disk that cannot be written) leaves the monitor as it was before it: the
        lines it read are read again next time, so no window is lost. What :meth:`catch_up`
        did since the last look is reported with it."""
        before = self._snapshot()
        try:
            done = self._look()
        except BaseException:
            self._rewind(before)
            raise
        between, self._between = self._between, Tick()
        done.read += between.read
        done.closed[:0] = between.closed
        return done

    def catch_up(self) -> int:
        """What a look does first, alone: read and fold what the log added since, closing and
        writing the row windows that fill; the lines read. Called between looks, it spreads a
        look's work over the interval in small steps instead of one burst per look (on a busy
        machine the server's slowest answers are what a burst shows in). Fails as a look does,
        the monitor as it was; :meth:`tick` reports what it did."""
        before = self._snapshot()
        try:
            read, closed = self._read_log()
            for window in closed:
                self._close(window)
        except BaseException:
            self._rewind(before)
            raise
        self._between.read += read
        self._between.closed += closed
        if self.spec.quality is not None:
            self._joiner.update()  # the labels' join is incremental too
        return read

    def _snapshot(self) -> tuple[dict[str, int], dict[str, Any], Reference, Any]:
        return (dict(self._log.offsets), self.windows.to_json(), self.reference, self._seen)

    def _rewind(self, before: tuple[dict[str, int], dict[str, Any], Reference, Any]) -> None:
        offsets, windows, self.reference, self._seen = before
        self._log.offsets = offsets
        self.windows = self._windows(self.reference)
        self.windows.restore(windows)

    def _read_log(self) -> tuple[int, list[Window]]:
        """The log's new lines folded into the open windows: how many, and the windows that
        filled."""
        read, closed = 0, []
        for name, offset, data in self._log.read():
            batches, count = self._batches(name, offset, data)
            read += count
            for batch in batches:
                closed += self.windows.add(batch)
        return read, closed

    def _look(self) -> Tick:
        now = self.clock()
        done = Tick(closed=self._follow_reference())
        done.read, filled = self._read_log()
        done.closed += filled
        done.closed += self.windows.close_due(now)
        for window in done.closed:
            self._close(window)
        done.checks = self.last = self.checks()
        done.notices = self._alert(done.checks, now)
        self._save(now)
        self._publish()
        return done

    def checks(self) -> list[Check]:
        """The latest checks of the version watched: its last closed window's, the quality of
        its latest window with enough labels, and the server's figures now."""
        version = self._watched()
        out: list[Check] = []
        latest = self._closed(version)[-1:] if version else []
        for window in latest:
            out += self._stored_checks(window)
        if self.spec.quality is not None and version is not None:
            out += self._quality(version)
        if self.server is not None:
            try:
                figures = self.server()
            except Exception as exc:  # a server not up: its figures are unknown, nothing more
                log.debug("monitor %s: no server figures: %s", self.spec.env, exc)
                figures = {}
            for name in rules.TICK_METRICS:
                if name in figures:
                    out.append(Check(name, figures[name], "", "info"))
        return out

    def _publish(self) -> None:
        """The latest window of each served version, and the alerts, as the gauges a server
        started with ``--env`` adds to its /metrics (a failure to write them is logged)."""
        from conveyor.monitor import gauges

        served = dict(self.roles()) or ({v: "stable" for v in [self._watched()] if v})
        versions = []
        for version, role in served.items():
            latest = self._closed(version)[-1:]
            checks = self._stored_checks(latest[0]) if latest else []
            window_end = None
            if latest:
                try:
                    stored = orjson.loads(latest[0].read_bytes())["window"]
                    window_end = Window.from_json(stored).end(self.spec.window)
                except (OSError, ValueError, KeyError, TypeError):
                    pass
            if self.spec.quality is not None:
                checks += self._quality(version)
            values = {c.name: c.value for c in checks}
            labels = next(
                (_labels(c.detail) for c in checks if c.name.startswith("quality.")), None
            )
            drifted = [
                c.name.removeprefix("drift.") for c in checks
                if c.name.startswith("drift.") and c.verdict == "alert"
                and c.name not in ("drift.share", "drift.count")
            ]  # fmt: skip
            versions.append(
                gauges.from_values(version, role, values, window_end=window_end, drifted=drifted,
                                   quality_labels=labels)
            )  # fmt: skip
        alerts = tuple(
            gauges.AlertGauge(r.name, r.severity, self.alerts[r.name].status == "firing")
            for r in self.spec.alerts
        )
        try:
            gauges.write(
                self.root, gauges.Gauges(self.spec.env, self.model, tuple(versions), alerts)
            )
        except (OSError, ConveyorError) as exc:
            log.warning("monitor %s: gauges not written: %s", self.spec.env, exc)

    # -- reading --------------------------------------------------------------------------

    def _batches(self, name: str, offset: int, data: bytes) -> tuple[list[Batch], int]:
        """The chunk's records as a batch per version. Each record becomes its rows as it is
        parsed, and is dropped: thousands of parsed records kept alive together (a dict and a
        list per column each) would make every garbage collection walk all of them."""
        tables: dict[str, _Rows] = {}
        count = 0
        for lines in segments.line_lists(data):
            for line in lines:
                try:
                    record = orjson.loads(line)
                    version = str(record["version"])
                    ts = float(record["ts"])
                except (ValueError, KeyError, TypeError):
                    continue  # not a record: counted by nobody, skipped
                rows = tables.get(version)
                if rows is None:
                    rows = tables[version] = self._rows_of(version)
                rows.add(ts, record.get("inputs"), record.get("outputs"))
                count += 1
        return [self._batch(rows) for rows in tables.values()], count

    def _rows_of(self, version: str) -> _Rows:
        names = self.columns(version) or self.reference.features
        known = self.reference.features
        # The table's column order: the model's, unless it lacks features (one tensor input
        # whose rows the reference's columns name), then the reference's.
        order = names if set(known) <= set(names) else known
        return _Rows(version, names, known, order)

    def _batch(self, rows: _Rows) -> Batch:
        """The rows as one batch: each row a list in the model's column order (the model
        scores them as they are), the features' columns by one transpose, no dict per row (the
        monitor shares its server's cores: a look costs what it reads)."""
        version, names, known, order = rows.version, rows.names, rows.known, rows.order
        table, times, said = rows.table, rows.times, rows.said
        at = {name: i for i, name in enumerate(order)}
        transposed = list(zip(*table, strict=True)) if table else []
        columns: dict[str, Sequence[Any]] = {
            n: transposed[at[n]] if n in at and transposed else (None,) * len(table) for n in known
        }
        scored = table
        if order is not names:
            scored = [[dict(zip(order, r, strict=True)).get(n) for n in names] for r in table]
        broken = None
        if self.schema is not None and times:
            from conveyor.gates.rows import broken_values  # broken_rows' rules, no pandas

            broken = broken_values(columns, self.schema)
        confidence = None
        scorer = self.scorer(version) if self.spec.estimate else None
        if scorer is not None and scored:
            confidence = _confidence(scorer, scored, names)
        return Batch(version, times, columns, said, confidence, broken)

    def _window_of(self, record: Any) -> Hashable:
        """Where a logged prediction's label counts: its window, and with ``slice_by`` the
        pair (window, its slice)."""
        window = self._window_key(record)
        if window is None or self.spec.quality is None or not self.spec.quality.slice_by:
            return window
        return window, self._slice_of(record, self.spec.quality.slice_by)

    def _slice_of(self, record: Any, name: str) -> str:
        """A logged row's slice: its value of ``name`` (a category), or for a number the
        reference's decile it falls in (``12.3-14.1``)."""
        version = str(record["version"])
        names = self.columns(version) or self.reference.features
        rows = _rows(record.get("inputs"), names, self.reference.features)
        value = rows[0].get(name) if len(rows) == 1 else None
        if value is None:
            return "missing"
        bins = self.reference.bins.features.get(name)
        if not isinstance(bins, NumericBins) or isinstance(value, str | bool):
            return str(value)
        inner = [bins.edges[i] for i in bins.deciles]  # the 10 % ... 90 % quantiles
        edges = [e for i, e in enumerate(inner) if i == 0 or e != inner[i - 1]]
        try:
            value = float(value)
        except (TypeError, ValueError):
            return str(value)
        at = bisect.bisect_right(edges, value)
        low = f"{edges[at - 1]:.4g}" if at > 0 else ""
        high = f"{edges[at]:.4g}" if at < len(edges) else ""
        return f"{low}-{high}"

    def _window_key(self, record: Any) -> str | None:
        version, ts = str(record["version"]), float(record["ts"])
        every = self.spec.window.every
        if every:
            return f"{version}:{math.floor(ts / every)}"
        starts = self._starts.get(version)
        open_ = self.windows.open.get(version)
        if open_ is not None and (not starts or starts[-1][1] != open_.number):
            starts = [*(starts or []), (open_.first, open_.number)]
        if not starts:
            return None
        at = bisect.bisect_right(starts, (ts, math.inf)) - 1
        if at < 0 and starts[0][1] > 0:  # a window no longer kept (retention)
            return None
        return f"{version}:{starts[max(at, 0)][1]}"

    # -- windows --------------------------------------------------------------------------

    def _windows(self, ref: Reference, counted: dict[str, int] | None = None) -> Windows:
        return Windows(
            self.spec.window, ref.bins, ref.label_bins, counted=dict(counted or {}),
            reference=ref.digest,
        )  # fmt: skip

    def _follow_reference(self) -> list[Window]:
        """When the reference changed (a retrain's pipeline wrote new training data, or the
        alias it names moved to the retrained version), the
        open windows close on the old reference, and new ones start on the new one: each window
        is judged against the reference it was profiled on. A reference that cannot be read
        now (being written) is looked at again next time; the old one stays."""
        now = seen(self.root, self.spec, self.model)
        if now == self._seen:
            return []
        try:
            new = reference(self.root, self.spec, self.model)
        except ConveyorError as exc:  # MonitorError, or the store or cache cannot be read
            log.warning("monitor %s: %s (the previous reference stays)", self.spec.env, exc)
            return []
        self._seen = now
        if new.digest == self.reference.digest:
            return []
        log.info("monitor %s: the reference %s changed: new windows", self.spec.env,
                 self.spec.reference)  # fmt: skip
        closed = list(self.windows.open.values())
        for window in closed:
            window.closed = True
        self.windows.open.clear()
        for window in closed:
            self._close(window)
        self.reference = new
        self.windows = self._windows(new, self.windows.counted)
        return closed

    def reference_of(self, window: Window) -> Reference:
        """The reference ``window`` was profiled on (the current one if it names none)."""
        if not window.reference or window.reference == self.reference.digest:
            return self.reference
        found = stored_reference(self.root, self.spec.env, window.reference)
        if found is None:
            raise MonitorError(
                f"monitor {self.spec.env}: window {window.key}'s reference "
                f"{window.reference[:12]} is no longer kept",
                hint=f"its profile is in {self.folder / 'references'}; it was removed",
            )
        return found

    def _close(self, window: Window) -> None:
        ref = self.reference_of(window)
        checks = evaluate(
            self.spec, ref.bins, ref.profile, window,
            label_bins=ref.label_bins, label_reference=ref.label_profile,
        )  # fmt: skip
        path = self.folder / "windows" / _safe(window.version) / f"{window.number}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"window": window.to_json(), "checks": [c.to_json() for c in checks]}
        write_bytes(path, orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))
        # closed again (a restart, a look that failed after it): counted once
        _insert_once(self._starts.setdefault(window.version, []), (window.first, window.number))
        _insert_once(self._numbers(window.version), window.number)
        self._retain(window.version)

    def _retain(self, version: str) -> None:
        """Keep ``retention`` windows of ``version``: the oldest files are removed, and the
        starts a late label is placed by (one that comes for a window removed counts in none):
        a look's cost and the state's size stay bounded however long it runs."""
        kept, keep = self._numbers(version), self.spec.retention
        if len(kept) > keep:
            folder = self.folder / "windows" / _safe(version)
            for number in kept[:-keep]:
                try:
                    (folder / f"{number}.json").unlink(missing_ok=True)
                except OSError as exc:  # tried again at the next window
                    log.warning("monitor %s: old window not removed: %s", self.spec.env, exc)
                    return
            del kept[:-keep]
        starts = self._starts.get(version)
        if starts is not None and len(starts) > keep:
            del starts[:-keep]

    def _numbers(self, version: str) -> list[int]:
        """The numbers of ``version``'s closed windows kept, oldest first: read from the folder
        once, then kept up to date as windows close (no listing of the folder per look)."""
        kept = self._kept.get(version)
        if kept is None:
            found = (self.folder / "windows" / _safe(version)).glob("*.json")
            kept = self._kept[version] = sorted(int(p.stem) for p in found if p.stem.isdigit())
        return kept

    def _closed(self, version: str | None) -> list[Path]:
        if version is None:
            return []
        folder = self.folder / "windows" / _safe(version)
        return [folder / f"{number}.json" for number in self._numbers(version)]

    def windows_of(self, version: str) -> list[tuple[Window, list[Check]]]:
        """Every closed window of ``version`` kept, oldest first, with its checks."""
        out = []
        for path in self._closed(version):
            try:
                body = orjson.loads(path.read_bytes())
                out.append((Window.from_json(body["window"]), [Check(**c) for c in body["checks"]]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning(
                    "monitor %s: window %s unreadable, left out: %s", self.spec.env, path, exc
                )
        return out

    def _stored_checks(self, path: Path) -> list[Check]:
        try:
            body = orjson.loads(path.read_bytes())
            return [Check(**c) for c in body["checks"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _quality(self, version: str) -> list[Check]:
        """The quality of ``version``'s latest window with enough labels (else the latest with
        any), and of each of its slices with ``slice_by``."""
        assert self.spec.quality is not None
        joined = self._joiner.update()
        tallies = self.quality_by_window(version)
        order = sorted(tallies, key=_window_number, reverse=True)
        enough = [k for k in order if tallies[k].labelled >= self.spec.quality.min_labels]
        key = (enough or order or [""])[0]
        check = quality_check(self.spec, key, tallies.get(key, Quality(0, 0)))
        slices = [
            quality_check(self.spec, key, tally, part=f"{self.spec.quality.slice_by}={part}")
            for part, tally in sorted(self._slices(version, key).items())
        ]
        counted = [
            f"{n} {what}"
            for n, what in (
                (joined.duplicates, "duplicates"),
                (joined.unknown, "for unknown ids"),
                (joined.late, "late"),
            )
            if n
        ]
        if counted:
            check = replace(check, detail=f"{check.detail}; labels so far: {', '.join(counted)}")
        return [check, *slices]

    def quality_by_window(self, version: str) -> dict[str, Quality]:
        """Window key -> the labels joined so far with ``version``'s predictions in it."""
        self._joiner.update()
        out: dict[str, list[int]] = {}
        for (v, group), t in self._joiner.groups.items():
            if v != version or group is None:
                continue
            key = str(group[0] if isinstance(group, tuple) else group)
            tally = out.setdefault(key, [0, 0])
            tally[0] += t.labelled
            tally[1] += t.correct
        return {k: Quality(n, ok) for k, (n, ok) in out.items()}

    def _slices(self, version: str, window: str) -> dict[str, Quality]:
        """Slice -> the labels of ``version``'s predictions in ``window`` and that slice."""
        return {
            str(group[1]): Quality(t.labelled, t.correct)
            for (v, group), t in self._joiner.groups.items()
            if v == version and isinstance(group, tuple) and group[0] == window
        }

    def _watched(self) -> str | None:
        """The version alerts watch: the stable one, else the one with the most windows."""
        roles = self.roles()
        stable = [v for v, role in roles.items() if role == "stable"]
        if stable:
            return stable[0]
        versions = [p.name for p in (self.folder / "windows").glob("*") if p.is_dir()]
        versions += list(self.windows.open)
        return max(versions, key=lambda v: len(self._numbers(v)), default=None)

    # -- alerts ---------------------------------------------------------------------------

    def _alert(self, checks: list[Check], now: float) -> list[Notice]:
        seen = {c.name: c for c in checks}
        notices: list[Notice] = []
        for rule in self.spec.alerts:
            check = seen.get(rule.condition.metric)
            observation = rules.Observation(
                check.value if check is not None else None,
                (check.window or None) if check is not None and rule.condition.per_window else None,
            )
            state, moved = rules.step(rule, self.alerts[rule.name], observation, now)
            self.alerts[rule.name] = state
            if moved is None:
                continue
            result = ""
            if moved.to == "firing" and rule.action:
                result = self._act(rule, Notice(self.spec.env, self.model, rule, moved))
            notice = Notice(self.spec.env, self.model, rule, moved, result)
            notices.append(notice)
            self._event(notice)
        if notices and self.notifier is not None:
            self.notifier.send(notices)
        return notices

    def _act(self, rule: rules.Rule, notice: Notice) -> str:
        action = self.actions.get(rule.action or "")
        if action is None:
            return f"{rule.action}: not available here (only where conveyor serve --env runs)"
        try:
            return action(notice, lambda severity, text: self.announce(rule, severity, text))
        except Exception as exc:  # an action's failure is reported, never stops monitoring
            log.warning("monitor %s: action %s failed: %s", self.spec.env, rule.action, exc)
            return f"{rule.action} failed: {exc}"

    def announce(self, rule: rules.Rule, severity: str, text: str) -> None:
        """Tell ``rule``'s receivers how its action ended (from any thread): an alert named
        after the action (``retrain``), firing when it failed (``critical``), else resolved,
        with ``text`` as its summary; recorded with the alert events."""
        action = rule.action or "action"
        said = rules.Rule(action, rule.condition, severity=severity, notify=rule.notify)
        now = self.clock()
        to: Literal["firing", "resolved"] = "firing" if severity == "critical" else "resolved"
        moved = rules.Transition(action, to, math.nan, now, None, now)
        notice = Notice(self.spec.env, self.model, said, moved, text)
        self._event(notice)
        if self.notifier is not None:
            self.notifier.send([notice])

    def _event(self, notice: Notice) -> None:
        moved = notice.transition
        line = {
            "ts": moved.at,
            "alert": notice.rule.name,
            "to": moved.to,
            "value": moved.value,
            "condition": str(notice.rule.condition),
            "window": moved.window,
            "severity": notice.rule.severity,
            "action": notice.action,
        }
        path = self.folder / "events.jsonl"
        try:
            with path.open("ab") as file:
                file.write(orjson.dumps(line) + b"\n")
        except OSError as exc:
            log.warning("monitor %s: cannot record an alert event: %s", self.spec.env, exc)

    def events(self) -> list[dict[str, Any]]:
        try:
            data = (self.folder / "events.jsonl").read_bytes()
        except OSError:
            return []
        return list(segments.records(segments.complete(self.folder / "events.jsonl", data)))

    # -- state ----------------------------------------------------------------------------

    def _save(self, now: float) -> None:
        state = {
            "format": STATE_FORMAT,
            "at": now,
            "checks": [c.to_json() for c in self.last],
            "reference": self.reference.digest,
            "offsets": dict(self._log.offsets),
            "windows": self.windows.to_json(),
            "starts": {v: [list(s) for s in starts] for v, starts in self._starts.items()},
            "alerts": {name: asdict(s) for name, s in self.alerts.items()},
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        write_bytes(
            self.folder / "state.json", orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY)
        )

    def _restore(self) -> None:
        path = self.folder / "state.json"
        try:
            state = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise MonitorError(
                f"monitor {self.spec.env}: {path} is damaged: {exc}",
                hint=f"remove {path} to start monitoring again from the log's beginning",
            ) from exc
        if state.get("format") != STATE_FORMAT:
            log.warning("monitor %s: %s is of another format: windows start again",
                        self.spec.env, path)  # fmt: skip
            return
        if state.get("reference") != self.reference.digest:
            # open windows of the reference before: restored on it, closed at the first tick
            before = stored_reference(self.root, self.spec.env, str(state.get("reference")))
            if before is None:
                log.warning("monitor %s: the reference changed: windows start again",
                            self.spec.env)  # fmt: skip
                return
            self.reference, self._seen = before, None
            self.windows = self._windows(before)
        try:
            self._log.offsets = {str(k): int(v) for k, v in state["offsets"].items()}
            self.windows.restore(state["windows"])
            self._starts = {
                v: [(float(a), int(b)) for a, b in s] for v, s in state.get("starts", {}).items()
            }
            self.last = [Check(**c) for c in state.get("checks", [])]
            for name, saved in state.get("alerts", {}).items():
                if name in self.alerts:
                    self.alerts[name] = rules.AlertState(**saved)
        except (KeyError, TypeError, ValueError, DataError) as exc:
            raise MonitorError(
                f"monitor {self.spec.env}: {path} is damaged: {exc}",
                hint=f"remove {path} to start monitoring again from the log's beginning",
            ) from exc


# ---------------------------------------------------------------------------------- records


@dataclass
class _Rows:
    """One version's rows read in a look, as lists in ``order``, with their times and the
    predictions."""

    version: str
    names: tuple[str, ...]  # the model's columns
    known: tuple[str, ...]  # the reference's features
    order: tuple[str, ...]  # the table's columns
    table: list[list[Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    said: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pick = operator.itemgetter(*self.order) if len(self.order) > 1 else None

    def add(self, ts: float, inputs: Any, outputs: Any) -> None:
        row = self._one_row(inputs) if type(inputs) is dict else None
        if row is not None:
            self.table.append(row)
            self.times.append(ts)
            flat = _flat(outputs, 1)
            self.said.append(flat[0] if flat is not None else None)
            return
        rows = _table(inputs, self.order, self.names, self.known)
        flat = _flat(outputs, len(rows))
        self.table += rows
        self.times += [ts] * len(rows)
        self.said += flat if flat is not None else [None] * len(rows)

    def _one_row(self, inputs: dict[str, Any]) -> list[Any] | None:
        """The row of the most common request, a table of one row (each column a list of one
        value), taken without a Python step per value (a look's largest cost was here); None
        for any other request (a column missing, more rows, a value not in a list), which
        :func:`_table` reads."""
        if self._pick is None:
            return None
        try:
            values = self._pick(inputs)
        except KeyError:
            return None
        if set(map(type, values)) != _LISTS or max(map(len, values)) != 1:
            return None
        row = list(itertools.chain.from_iterable(values))
        return row if len(row) == len(values) else None


_LISTS = {list}


def _rows(inputs: Any, names: tuple[str, ...], known: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A logged request's inputs as rows of named values: a list of rows (the model's
    columns in order, else the reference's features in order when a row has as many values:
    a model whose signature is one tensor), a list of records, a mapping of columns, or one
    row."""
    if isinstance(inputs, dict):
        wanted = {*names, *known}
        columns = {k: v if isinstance(v, list) else [v] for k, v in inputs.items() if k in wanted}
        n = max((len(v) for v in columns.values()), default=0)
        return [{k: (v[i] if i < len(v) else None) for k, v in columns.items()} for i in range(n)]
    if not isinstance(inputs, list) or not inputs:
        return []
    if all(isinstance(r, dict) for r in inputs):
        return list(inputs)
    if not isinstance(inputs[0], list):
        inputs = [inputs]
    width = len(inputs[0]) if isinstance(inputs[0], list) else 0
    if width != len(names) and width == len(known):
        names = known
    return [dict(zip(names, row, strict=False)) for row in inputs if isinstance(row, list)]


def _table(
    inputs: Any, order: tuple[str, ...], names: tuple[str, ...], known: tuple[str, ...]
) -> list[list[Any]]:
    """A logged request's rows as lists of ``order``'s values (None where a row has none):
    :func:`_rows` without a dict per row in the common case, rows as wide as ``order``."""
    width = len(order)
    if isinstance(inputs, dict):  # a mapping of columns (a table's request)
        lists = {k: v if isinstance(v, list) else [v] for k, v in inputs.items()}
        columns = [lists.get(name) for name in order]
        # rows are counted over the columns read: a long column the model has not is no rows
        n = max((len(c) for c in columns if c is not None), default=0)
        if n == 1:
            return [[c[0] if c else None for c in columns]]
        return [[c[i] if c and i < len(c) else None for c in columns] for i in range(n)]
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], list):
        if all(isinstance(r, list) and len(r) == width for r in inputs):
            return inputs
    elif isinstance(inputs, list) and 0 < len(inputs) == width and not isinstance(inputs[0], dict):
        return [inputs]
    return [[row.get(n) for n in order] for row in _rows(inputs, names, known)]


def _flat(outputs: Any, rows: int) -> list[Any] | None:
    """One prediction per row, when the outputs say so."""
    if isinstance(outputs, dict) and len(outputs) == 1:
        outputs = next(iter(outputs.values()))
    if not isinstance(outputs, list):
        return [outputs] if rows == 1 else None
    if len(outputs) != rows:
        return None
    return [o[0] if isinstance(o, list) and len(o) == 1 else o for o in outputs]


def _confidence(scorer: Callable[[Any], Any], rows: list[list[Any]], names: tuple[str, ...]) -> Any:
    """Each row's top class probability, by the version's own model (None where it failed)."""
    import numpy as np

    try:
        probabilities = np.asarray(scorer(_model_input(rows, names)), dtype=float)
        return probabilities.max(axis=1).tolist()
    except Exception as exc:  # a row the model refuses: no estimate for this batch
        log.debug("monitor: rows not scored for the estimate: %s", exc)
        return None


def _model_input(rows: list[list[Any]], names: tuple[str, ...]) -> Any:
    """The rows as the model is given them: a DataFrame where pandas is installed (a model that
    takes a table needs one; its signature converts it otherwise), else an array (an install
    without pandas never loads a model that takes a table: its estimate is skipped, logged)."""
    import numpy as np

    try:
        import pandas as pd
    except ImportError:
        try:
            return np.array(rows, dtype=np.float64)  # None is NaN
        except (TypeError, ValueError):  # text among the values
            return np.array(rows, dtype=object)
    return pd.DataFrame(rows, columns=list(names))


def _schema(root: Path, spec: Monitor) -> Any:
    """The data gate's schema named by ``schema:`` (a file of the project), None without one."""
    if not spec.schema:
        return None
    from conveyor.foundation import yamlio
    from conveyor.foundation.paths import read_inside
    from conveyor.gates.schema import Schema

    raw = read_inside(root.resolve(), spec.schema)
    if raw is None:
        raise MonitorError(
            f"monitor {spec.env}: cannot read the schema {spec.schema}: no such file in the "
            "project",
            hint="conveyor schema infer data/prepared/train.csv -o schema.yaml writes one",
        )
    located = yamlio.load(raw.decode(errors="replace"), spec.schema)
    return Schema.from_dict(located.data, located)


def _insert_once(ordered: list[Any], item: Any) -> None:
    at = bisect.bisect_left(ordered, item)
    if at == len(ordered) or ordered[at] != item:
        ordered.insert(at, item)


def _labels(detail: str) -> int | None:
    """The label count a quality check's detail starts with (``"212 labels ..."``)."""
    head = detail.split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def _window_number(key: str) -> int:
    tail = key.rpartition(":")[2]
    return int(tail) if tail.lstrip("-").isdigit() else -1


def _safe(version: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in version)
