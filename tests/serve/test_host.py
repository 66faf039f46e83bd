"""The candidate's own process, its protocol run in one event loop: a real :class:`Host` on a
real Unix socket loading real versions of ``clf``, reached through a :class:`Link` by
:class:`Remote` members and a router, as a worker reaches it. The process itself (started,
killed, started again by ``conveyor serve --env``) is tested in tests/deploy/test_rollouts_e2e.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conveyor.foundation.errors import ConveyorError
from conveyor.registry.deployment import Deployment
from conveyor.registry.stored import resolve
from conveyor.serve.errors import RequestError
from conveyor.serve.host import SHADOW_NICE, Host, HostConfig, Hosting
from conveyor.serve.metrics import Metrics
from conveyor.serve.options import Options
from conveyor.serve.remote import Link, Remote, Unavailable
from conveyor.serve.router import Router
from conveyor.serve.served import Served
from conveyor.serve.workers import sweep

TOKEN = b"t" * 64
ROWS = np.array([[0.5, 1.0, -1.0], [-0.5, 0.0, 2.0], [1.5, 0.0, 0.0]])
CANARY = Deployment(
    "production", "clf", stable=1, candidate=2, status="progressing", weight=100, revision=2
)


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="conveyor-host-test-"))  # a Unix socket's path is short
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Rig:
    def __init__(self, root: Path, folder: Path) -> None:
        self.root = root
        config = HostConfig(str(folder / "c.sock"), str(root), "clf", {})
        self.host = Host(config, TOKEN)
        self.link = Link(config.socket, TOKEN)
        self.metrics = Metrics()  # the worker's

    def remote(self, role: str = "candidate") -> Remote:
        return Remote("models:/clf/2", "clf", self.link, self.metrics, role=role)  # type: ignore[arg-type]

    async def fetched(self, version: int = 2) -> Remote:
        remote = self.remote()
        await remote.fetch(resolve(self.root, f"models:/clf/{version}"))
        return remote


def run(root: Path, folder: Path, check: Callable[[Rig], Awaitable[None]]) -> None:
    async def main() -> None:
        rig = Rig(root, folder)
        server = await rig.host.serve()
        try:
            await asyncio.wait_for(check(rig), timeout=60)
        finally:
            rig.link.close()
            server.close()
            rig.host.close()

    asyncio.run(main())


def test_a_version_loaded_there_answers_here(registered: Path, folder: Path) -> None:
    async def check(rig: Rig) -> None:
        remote = rig.remote()
        assert not remote.ready and remote.version is None
        # two workers asking for one version at once: one load
        loaded = await asyncio.gather(
            rig.fetched(), remote.fetch(resolve(registered, "models:/clf/2"))
        )
        assert loaded[1].number == "2" and remote.ready
        assert remote.require().signature is not None  # the package described, no model here
        data, prediction = await remote.predict(ROWS, timeout=5)
        assert data is ROWS
        assert prediction.version == "2" and prediction.role == "candidate"
        assert list(prediction.outputs) == [0, 1, 0]  # version 2 is the flipped one
        assert rig.host.metrics.batches.counts  # the model call counted where it ran

    run(registered, folder, check)


def test_errors_come_back_as_the_errors_they_were(registered: Path, folder: Path) -> None:
    async def check(rig: Rig) -> None:
        remote = await rig.fetched()
        with pytest.raises(RequestError) as caught:
            await remote.predict([["a", "b"]], timeout=5)
        assert caught.value.status == 400 and not isinstance(caught.value, Unavailable)
        with pytest.raises(ConveyorError, match="9"):
            await remote.fetch(SimpleNamespace(version=9))  # type: ignore[arg-type]
        assert remote.ready  # what was loaded still answers

    run(registered, folder, check)


def test_a_peer_without_the_token_is_not_heard(registered: Path, folder: Path) -> None:
    async def check(rig: Rig) -> None:
        rig.link.token = b"x" * 64
        remote = rig.remote()
        with pytest.raises(Unavailable):
            await remote.fetch(resolve(registered, "models:/clf/2"))
        assert rig.host.served is None  # nothing it sent was acted on

    run(registered, folder, check)


def test_copies_are_compared_and_counted_in_the_host(registered: Path, folder: Path) -> None:
    async def check(rig: Rig) -> None:
        remote = await rig.fetched()
        primary = np.array([1, 0, 0])  # version 2 answers [0, 1, 0]: one row of three agrees
        assert remote.copy(ROWS, primary, 5.0, limit=4)
        while rig.link.copies:
            await asyncio.sleep(0.01)
        assert rig.host.metrics.shadow[("clf", "2", "agree")] == 1
        assert rig.host.metrics.shadow[("clf", "2", "disagree")] == 2
        # a copy the candidate's signature refuses fails alone, counted as the shadow's error
        assert remote.copy([["a", "b"]], np.array([1]), 5.0, limit=4)
        assert remote.copy(ROWS, primary, 5.0, limit=4)
        while rig.link.copies:
            await asyncio.sleep(0.01)
        assert rig.host.metrics.shadow[("clf", "2", "error")] == 1
        assert rig.host.metrics.shadow[("clf", "2", "agree")] == 2
        shadow = [t for t in threading.enumerate() if t.name.startswith("conveyor-shadow")]
        assert shadow and shadow[0].native_id is not None
        nice = os.getpriority(os.PRIO_PROCESS, shadow[0].native_id)
        assert nice == min(os.getpriority(os.PRIO_PROCESS, 0) + SHADOW_NICE, 19)
        # bounded: with the limit reached nothing is sent
        rig.link.copies = 4
        assert not remote.copy(ROWS, primary, 5.0, limit=4)

    run(registered, folder, check)


def test_when_the_host_goes_waiting_requests_fail_over_to_stable(
    registered: Path, folder: Path
) -> None:
    """A request at the candidate when its process stops is answered by stable, and charged to
    the candidate as a failover; the candidate is not ready until loaded again."""

    async def check(rig: Rig) -> None:
        remote = await rig.fetched()
        stable = Served("models:/clf@production", registered, rig.metrics)
        await stable.fetch(resolve(registered, "models:/clf/1"))
        router = Router(stable, remote, metrics=rig.metrics)
        router.apply(CANARY)
        assert router.routing.weight == 100
        slow = asyncio.Event()
        served = rig.host.served
        assert served is not None
        real = served.batcher.submit

        async def held(*args: object, **kw: object) -> object:
            await slow.wait()  # the host stops before answering
            return await real(*args, **kw)  # type: ignore[arg-type]

        served.batcher.submit = held  # type: ignore[method-assign]
        waiting = asyncio.ensure_future(router.predict(ROWS, timeout=5, key="r1"))
        await asyncio.sleep(0.1)
        assert rig.link.pending  # the request is at the host
        rig.host.close()  # its connections close, as they do when its process dies
        _, prediction = await asyncio.wait_for(waiting, 5)
        assert prediction.version == "1"  # stable answered it
        assert not remote.ready
        failover = {k: v for k, v in rig.metrics.requests.items() if k[3] == "failover"}
        assert failover == {("clf", "2", "candidate", "failover", "503"): 1}

    run(registered, folder, check)


def test_hosting_says_why_and_since_when_its_process_stopped(tmp_path: Path) -> None:
    hosting = Hosting(tmp_path, "clf", Options())
    try:
        assert hosting.stopped_since(0) is None
        hosting.stops.append((100.0, "was killed (SIGKILL)"))
        assert hosting.stopped_since(50.0) == "the candidate's process was killed (SIGKILL)"
        assert hosting.stopped_since(150.0) is None  # before this rollout began
        assert Path(hosting.socket).parent.stat().st_mode & 0o777 == 0o700
    finally:
        hosting.close()
    assert not Path(hosting.socket).parent.exists()


def test_hosting_starts_its_process_again_and_counts_only_failures(tmp_path: Path) -> None:
    """Killed: a failure, remembered (the controller aborts on it). Exited 0 (a SIGTERM sent to
    the whole server reached it first): no failure, or a server stopped mid-rollout would abort
    the rollout the next one resumes. Started again after either."""
    said: list[str] = []
    hosting = Hosting(tmp_path, "clf", Options(), notify=said.append, pause=0.1)
    hosting.start()
    try:
        first = _running(hosting, None)
        os.kill(first, signal.SIGTERM)
        second = _running(hosting, first)
        assert hosting.stopped_since(0) is None and said == []
        os.kill(second, signal.SIGKILL)
        _running(hosting, second)
        assert hosting.stopped_since(0) == "the candidate's process was killed (SIGKILL)"
        assert said == ["the candidate's process was killed (SIGKILL); starting it again"]
    finally:
        hosting.close()
    assert hosting.process is not None and hosting.process.poll() is not None


def _running(hosting: Hosting, other_than: int | None) -> int:
    """The pid of the host once a new one listens on its socket."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = hosting.pid
        if pid is not None and pid != other_than and Path(hosting.socket).exists():
            process = hosting.process
            if process is not None and process.poll() is None:
                return pid
        time.sleep(0.05)
    raise AssertionError("the candidate's process did not start again")


def test_the_socket_folders_of_servers_gone_are_swept(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (tmp_path / f"conveyor-serve-{gone}-abc").mkdir()
    (tmp_path / f"conveyor-serve-{os.getpid()}-def").mkdir()  # a server still running
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    (tmp_path / f"conveyor-serve-{gone}-lnk").symlink_to(outside)  # never followed
    sweep(tmp_path, "conveyor-serve-")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {f"conveyor-serve-{gone}-lnk", f"conveyor-serve-{os.getpid()}-def", "outside"}
    assert (outside / "keep").exists()


def test_a_host_that_stops_reading_does_not_grow_the_workers_memory(folder: Path) -> None:
    """A hostile or hung peer on the socket reads the token and then nothing: the worker stops
    queueing for it past its bound, fails what waits on it (stable answers those), and drops
    copies instead of buffering them."""

    async def main() -> None:
        peers: list[asyncio.StreamWriter] = []

        async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer)
            await reader.readexactly(len(TOKEN))
            await asyncio.sleep(60)  # reads nothing more

        path = str(folder / "deaf.sock")
        server = await asyncio.start_unix_server(deaf, path)
        link = Link(path, TOKEN, max_buffered=2**20)
        try:
            assert await link.connect()
            big = np.zeros(2**15)  # 256 KiB a request
            waiting = []
            with pytest.raises(Unavailable, match="stopped reading"):
                for _ in range(200):
                    waiting.append(link.send("predict", "candidate", big, 5.0))
                    await asyncio.sleep(0.01)  # the turn's frames are written
            assert len(waiting) < 40  # about 1 MiB and what the socket holds, not 50 MiB
            results = await asyncio.gather(*waiting, return_exceptions=True)
            assert all(isinstance(r, Unavailable) for r in results)
            assert not link.up and not link.copy(big, [0], 5.0, limit=512)
        finally:
            link.close()
            for writer in peers:
                writer.close()
            server.close()
            await asyncio.sleep(0.05)  # the transports close before the loop does

    asyncio.run(asyncio.wait_for(main(), 30))
