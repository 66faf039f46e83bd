"""Remotes: configuration, the Remote contract (every backend), and errors.

The contract tests run over the folder remote (``LocalRemote``), fsspec's folder and in-memory
filesystems, and S3 (moto on loopback).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.data.hashing import hash_bytes
from conveyor.data.remote import (
    MissingObject,
    Remote,
    RemoteSpec,
    absolute_url,
    storage_options,
)
from conveyor.data.remote_fsspec import FsspecRemote, plan_checks
from conveyor.data.remote_local import LocalRemote
from conveyor.foundation.errors import RemoteError
from tests.conftest import Project, conveyor_process
from tests.data.conftest import S3_ENV


# -- configuration: pure ---------------------------------------------------------------------
def test_relative_folder_is_relative_to_the_project_root() -> None:
    root = Path("/work/proj")
    assert absolute_url("../storage", root) == "/work/storage"
    assert absolute_url("/abs/store", root) == "/abs/store"
    assert absolute_url("file:///abs/store", root) == "/abs/store"
    assert absolute_url("s3://bucket/prefix", root) == "s3://bucket/prefix"
    spec = RemoteSpec.of("origin", "store", {}, root=root)
    assert (spec.url, spec.protocol, spec.atomic_put) == ("/work/proj/store", "file", False)


def test_s3_options_go_where_s3fs_expects_them() -> None:
    options = {
        "url": "s3://b/p",
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "eu-west-1",
        "access_key_id": "AK",
        "secret_access_key": "SK",
        "anon": "false",
        "profile": "dev",
    }
    assert storage_options("s3", options) == {
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
        "key": "AK",
        "secret": "SK",
        "anon": False,
        "profile": "dev",
        "config_kwargs": {
            "connect_timeout": 10.0,
            "read_timeout": 30.0,
            "retries": {"mode": "standard", "total_max_attempts": 2},
        },
    }
    # Other backends get their options as written.
    assert storage_options("gs", {"project": "p", "token": "anon"}) == {
        "project": "p",
        "token": "anon",
    }


def test_s3_timeouts_and_retries_are_remote_options() -> None:
    """As ``conveyor config`` stores them (strings), into botocore's Config; theirs win."""
    options = {"connect_timeout": "2", "read_timeout": "2.5", "retries": "0"}
    assert storage_options("s3", options)["config_kwargs"] == {
        "connect_timeout": 2.0,
        "read_timeout": 2.5,
        "retries": {"mode": "standard", "total_max_attempts": 1},
    }
    written = {"read_timeout": 5, "config_kwargs": {"read_timeout": 7, "max_pool_connections": 3}}
    assert storage_options("s3", written)["config_kwargs"] == {
        "connect_timeout": 10.0,
        "read_timeout": 7,
        "max_pool_connections": 3,
        "retries": {"mode": "standard", "total_max_attempts": 2},
    }
    # The defaults: a frozen endpoint costs at most (connect or read) x attempts, about a minute.
    limits = storage_options("s3", {})["config_kwargs"]
    worst = max(limits["connect_timeout"], limits["read_timeout"])
    assert worst * limits["retries"]["total_max_attempts"] <= 60


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("read_timeout", "soon", "must be a number of seconds, not 'soon'"),
        ("connect_timeout", "0", "must be a number of seconds, above 0, not '0'"),
        ("retries", "1.5", "must be a whole number, not '1.5'"),
        ("retries", "true", "must be a whole number, 0 or more, not True"),
    ],
)
def test_a_bad_timeout_option_is_refused_naming_the_key(
    project: Project, key: str, value: str, message: str
) -> None:
    project.ok("remote", "add", "-d", "s3", "s3://bucket/store")
    project.ok("config", f"remote.s3.{key}", value)
    project.write("data.txt", "x")
    project.ok("add", "data.txt")
    result = project.run("push")
    assert result.code == 2, result.err
    error, hint = result.err.strip().splitlines()
    assert error == f"error: remote.s3.{key}: {message}"
    assert hint == f"  hint: conveyor config remote.s3.{key} NUMBER"


def test_plan_lists_a_shard_when_that_is_cheaper_than_one_request_per_object() -> None:
    groups = {"aa": ["aa1", "aa2", "aa3"], "bb": ["bb1"], "cc": ["cc1", "cc2"]}
    # Small shards (one page each): every shard is listed.
    assert plan_checks(groups, per_shard=10) == (["aa", "bb", "cc"], [])
    # Shards of ~2500 objects cost 3 pages: only a shard with 3+ wanted objects is listed.
    assert plan_checks(groups, per_shard=2500) == (["aa"], ["bb1", "cc1", "cc2"])


# -- the Remote contract, run over every backend ---------------------------------------------
@pytest.fixture(params=["local", "fsspec-folder", "memory", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    if request.param == "local":
        return LocalRemote(RemoteSpec.of("local", "store", {}, root=tmp_path), jobs=4)
    if request.param == "fsspec-folder":
        spec = RemoteSpec.of("folder", str(tmp_path / "store"), {}, root=tmp_path)
    elif request.param == "memory":
        spec = RemoteSpec("memory", f"memory://conveyor-{uuid.uuid4().hex}/store")
    else:
        bucket = request.getfixturevalue("s3_bucket")
        endpoint = request.getfixturevalue("moto_endpoint")
        spec = RemoteSpec.of(
            "s3", f"s3://{bucket}/store", {"endpoint_url": endpoint}, root=tmp_path
        )
    return FsspecRemote(spec, jobs=4)


def _put(remote: Remote, rel: str, data: bytes) -> None:
    """Write a file that is not an object (a stray note, a temp file) onto the remote."""
    if isinstance(remote, LocalRemote):
        target = Path(remote.root, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    else:
        assert isinstance(remote, FsspecRemote)
        target = f"{remote.root}/{rel}"
        remote.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        remote.fs.pipe_file(target, data)


def _files(remote: Remote) -> list[str]:
    """Every file on the remote, objects and temp files alike, relative to its root."""
    if isinstance(remote, LocalRemote):
        root = Path(remote.root)
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert isinstance(remote, FsspecRemote)
    try:
        found = remote.fs.find(remote.root)
    except FileNotFoundError:
        return []
    return sorted(f[len(remote.root) + 1 :] for f in found)


def _objects(tmp_path: Path, count: int) -> dict[str, Path]:
    out = {}
    for i in range(count):
        data = f"object {i}\n".encode() * (i + 1)
        path = tmp_path / f"src{i}"
        path.write_bytes(data)
        out[hash_bytes(data)] = path
    return out


def test_contract_upload_exists_download(remote: Remote, tmp_path: Path) -> None:
    objects = _objects(tmp_path, 3)
    assert remote.exists_many(objects) == set()
    for oid, path in objects.items():
        remote.upload(str(path), oid)
    assert remote.exists_many([*objects, "0" * 64]) == set(objects)
    for oid, path in objects.items():
        dest = tmp_path / f"dest-{oid}"
        assert remote.download(oid, str(dest)) == oid  # the hash of what it wrote
        assert dest.read_bytes() == path.read_bytes()
        assert dest.stat().st_mode & 0o222 == 0  # read-only, as the cache wants it
    with pytest.raises(MissingObject, match="not on remote"):
        remote.download("0" * 64, str(tmp_path / "nothing"))


def test_contract_download_reports_what_damaged_bytes_hash_to(
    remote: Remote, tmp_path: Path
) -> None:
    oid = next(iter(_objects(tmp_path, 1)))
    _put(remote, f"{oid[:2]}/{oid[2:]}", b"bit rot")
    assert remote.download(oid, str(tmp_path / "dest")) == hash_bytes(b"bit rot")


def test_contract_upload_many_reports_each_object_once_it_is_there(
    remote: Remote, tmp_path: Path
) -> None:
    objects = _objects(tmp_path, 30)
    caller = threading.get_ident()
    reported: list[str] = []

    def done(oid: str) -> None:
        assert threading.get_ident() == caller  # progress is safe to update from here
        assert remote.exists_many([oid]) == {oid}
        reported.append(oid)

    items = [(str(path), oid) for oid, path in objects.items()]
    remote.upload_many(items, jobs=3, done=done)
    assert sorted(reported) == sorted(objects)
    assert sorted(remote.iter_oids()) == sorted(objects)
    assert _files(remote) == sorted(f"{o[:2]}/{o[2:]}" for o in objects)  # no temp file left
    remote.upload_many([], jobs=3, done=done)  # nothing to do is fine


def test_contract_many_objects_are_checked_by_listing(remote: Remote, tmp_path: Path) -> None:
    objects = _objects(tmp_path, 40)
    stored = sorted(objects)[::2]
    for oid in stored:
        remote.upload(str(objects[oid]), oid)
    absent = [hash_bytes(f"absent {i}".encode()) for i in range(40)]
    assert remote.exists_many([*objects, *absent]) == set(stored)


def test_contract_iter_oids_and_remove(remote: Remote, tmp_path: Path) -> None:
    objects = _objects(tmp_path, 5)
    for oid, path in objects.items():
        remote.upload(str(path), oid)
    # Things that are not objects are never reported (a temp file, a stray note).
    first = next(iter(objects))
    _put(remote, "README", b"junk")
    _put(remote, f"{first[:2]}/{first[2:]}.1234.tmp", b"junk")
    _put(remote, f".tmp/1.host.abc.0/{first[2:]}", b"junk")
    assert sorted(remote.iter_oids()) == sorted(objects)
    gone = sorted(objects)[:2]
    remote.remove([*gone, "0" * 64])  # an oid that is not there is ignored
    assert sorted(remote.iter_oids()) == sorted(objects)[2:]
    assert remote.exists_many(objects) == set(sorted(objects)[2:])


def test_contract_concurrent_uploads_of_one_object(remote: Remote, tmp_path: Path) -> None:
    (oid, path), *_ = _objects(tmp_path, 1).items()
    threads = [threading.Thread(target=remote.upload, args=(str(path), oid)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    remote.download(oid, str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == path.read_bytes()
    assert list(remote.iter_oids()) == [oid]


def test_contract_failed_upload_leaves_nothing(remote: Remote, tmp_path: Path) -> None:
    oid = hash_bytes(b"never written")
    with pytest.raises(RemoteError, match=f"remote {remote.name!r}"):
        remote.upload(str(tmp_path / "does-not-exist"), oid)
    assert remote.exists_many([oid]) == set()
    assert list(remote.iter_oids()) == []
    assert _files(remote) == []  # no temp file left behind


def test_contract_failed_upload_many_keeps_what_was_reported(
    remote: Remote, tmp_path: Path
) -> None:
    objects = _objects(tmp_path, 20)
    items = [(str(path), oid) for oid, path in objects.items()]
    broken = hash_bytes(b"never written")
    items.insert(10, (str(tmp_path / "does-not-exist"), broken))
    reported: list[str] = []
    with pytest.raises(RemoteError, match="does-not-exist"):
        remote.upload_many(items, jobs=2, done=reported.append)
    assert set(reported) <= set(objects)
    # Whatever is there is whole, and everything reported is there; no temp file is left.
    assert set(reported) <= set(remote.iter_oids()) <= set(objects)
    assert all(f"{o[:2]}/{o[2:]}" in _files(remote) for o in reported)
    assert len(_files(remote)) == len(list(remote.iter_oids()))


def test_empty_or_absent_remote_holds_nothing(tmp_path: Path) -> None:
    for remote in (
        FsspecRemote(RemoteSpec.of("nowhere", str(tmp_path / "absent"), {}, root=tmp_path)),
        LocalRemote(RemoteSpec.of("nowhere", str(tmp_path / "absent"), {}, root=tmp_path)),
    ):
        assert remote.exists_many([hash_bytes(str(i).encode()) for i in range(30)]) == set()
        assert list(remote.iter_oids()) == []


# -- errors a user meets, through the CLI ------------------------------------------------------
def test_missing_backend_package(project: Project) -> None:
    pytest.importorskip("fsspec")
    if _installed("gcsfs"):
        pytest.skip("gcsfs is installed here")
    project.ok("remote", "add", "-d", "gcs", "gs://bucket/conveyor")
    result = project.run("push")
    assert result.code == 1
    assert "remote 'gcs' (gs://bucket/conveyor) needs the 'gcsfs' package" in result.err
    assert "hint: pip install gcsfs" in result.err
    assert "Traceback" not in result.err


def test_unknown_kind_of_url(project: Project) -> None:
    project.ok("remote", "add", "-d", "odd", "nosuch://bucket/x")
    result = project.run("pull")
    assert result.code == 2
    assert "remote 'odd': unknown kind of URL 'nosuch://'" in result.err


def test_unreachable_s3_remote(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    port = _free_port()  # nothing listens there
    project.write(
        ".conveyor/config.local",
        "remote:\n"
        "  dead:\n"
        "    url: s3://bucket/store\n"
        f"    endpoint_url: http://127.0.0.1:{port}\n"
        "    config_kwargs: {retries: {max_attempts: 1}, connect_timeout: 2}\n",
    )
    project.write("data.txt", "x")
    project.ok("add", "data.txt")
    result = project.run("push", "-r", "dead")
    assert result.code == 1
    assert "error: remote 'dead' (s3://bucket/store): checking object" in result.err
    assert "Could not connect to the endpoint URL" in result.err
    assert "Traceback" not in result.err


def test_options_alone_in_config_local(project: Project) -> None:
    """Credentials go in config.local while the url stays in the committed config."""
    project.write("model.bin", "weights")
    project.ok("add", "model.bin")
    project.ok("remote", "add", "-d", "store", "../store")
    project.ok("config", "--local", "remote.store.auto_mkdir", "true")
    assert project.ok("push").startswith("pushed 1 object (")


def test_help_does_not_import_fsspec() -> None:
    code = (
        "import sys\n"
        "from conveyor.cli.main import main\n"
        "main(['push', '--help']); main(['pull', '--help'])\n"
        "assert 'fsspec' not in sys.modules, 'fsspec imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--remote NAME" in proc.stdout


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """moto's S3 server in a process of its own (so that a test can kill it), with a bucket."""
    import boto3

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, **_credentials())
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket="killed")
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                server.wait()
                raise
            time.sleep(0.1)
    try:
        yield endpoint, server
    finally:
        server.kill()
        server.wait()


def _credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


def test_s3_server_killed_mid_push_is_one_short_error(
    project: Project,
    own_s3: tuple[str, subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiohttp's orphaned tasks used to print a traceback each before the error that matters."""
    import boto3

    endpoint, server = own_s3
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    for i in range(100):  # big enough that request bodies are in flight when the server dies
        project.write(f"data/f{i:03d}.bin", os.urandom(3_000_000))
    project.ok("add", "data")
    project.write(
        ".conveyor/config.local",
        f"remote:\n  s3:\n    url: s3://killed/store\n    endpoint_url: {endpoint}\n",
    )
    client = boto3.client("s3", endpoint_url=endpoint, **_credentials())

    def kill_mid_push() -> None:
        while client.list_objects_v2(Bucket="killed").get("KeyCount", 0) < 20:
            time.sleep(0.02)
        server.kill()

    killer = threading.Thread(target=kill_mid_push, daemon=True)
    killer.start()
    result = project.run("push", "-r", "s3", "-j", "16")
    killer.join(timeout=10)
    assert server.poll() is not None, "the push ended before the server could be killed"
    gc.collect()  # orphaned tasks report their exceptions when they are collected
    # The command line prints asyncio's reports through logging's last resort, on stderr.
    reports = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    err = result.err + capsys.readouterr().err + "\n".join(reports)
    assert result.code == 1, err
    assert "Traceback" not in err and "Task exception" not in err, err
    error, hint = err.strip().splitlines()
    assert error.startswith("error: remote 's3' (s3://killed/store): uploading object"), err
    assert hint.startswith("  hint: check the url"), err


def test_a_failed_task_left_on_the_backends_loop_prints_nothing(
    s3_bucket: str, moto_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What aiohttp leaves behind when a connection dies, made on purpose: reported at debug."""
    import asyncio

    spec = RemoteSpec.of(
        "s3", f"s3://{s3_bucket}/store", {"endpoint_url": moto_endpoint}, root=tmp_path
    )
    loop = FsspecRemote(spec).fs.loop

    async def fail() -> None:
        raise ConnectionResetError("the server went away")

    async def orphan() -> None:
        task = asyncio.ensure_future(fail())
        await asyncio.sleep(0.05)
        assert task.done()
        del task  # its exception never retrieved

    caplog.set_level(logging.DEBUG, logger="conveyor.data.remote_fsspec")
    asyncio.run_coroutine_threadsafe(orphan(), loop).result(timeout=10)
    gc.collect()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    [record] = [r for r in caplog.records if r.name == "conveyor.data.remote_fsspec"]
    assert record.getMessage() == "remote backend: Task exception was never retrieved"


def _frozen_push(
    project: Project, server: subprocess.Popen[bytes], endpoint: str, freeze_after: int
) -> tuple[int, str, float]:
    """``conveyor push`` (a process) to a moto server stopped once it holds ``freeze_after``
    objects: (exit code, stderr, seconds taken). The server is resumed and killed after."""
    import boto3

    project.ok("remote", "add", "-d", "frozen", "s3://killed/store")
    project.ok("config", "remote.frozen.endpoint_url", endpoint)
    for key, value in (("connect_timeout", "2"), ("read_timeout", "2"), ("retries", "1")):
        project.ok("config", f"remote.frozen.{key}", value)
    client = boto3.client("s3", endpoint_url=endpoint, **_credentials())

    def freeze() -> None:
        while client.list_objects_v2(Bucket="killed").get("KeyCount", 0) < freeze_after:
            time.sleep(0.02)
        os.kill(server.pid, signal.SIGSTOP)

    freezer = threading.Thread(target=freeze, daemon=True)
    freezer.start()
    freezer.join(timeout=0 if freeze_after else 10)
    try:
        started = time.monotonic()
        push = conveyor_process(
            "push",
            "-j",
            "16",
            cwd=project.root,
            env={**os.environ, **S3_ENV},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _, err = push.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            push.kill()
            push.communicate()
            pytest.fail("push to a frozen endpoint still running after 120 s")
        took = time.monotonic() - started
        freezer.join(timeout=10)
        assert not freezer.is_alive(), "the push ended before the server could be frozen"
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.kill()
    return push.returncode, err, took


def test_a_frozen_s3_endpoint_fails_within_the_configured_timeouts(
    project: Project, own_s3: tuple[str, subprocess.Popen[bytes]]
) -> None:
    """A stopped server still gets its connections accepted by the kernel, and never answers.

    With s3fs's and botocore's defaults (5 attempts of 15-60 s, inside s3fs's own 5) a push
    hung for over 400 s; with the remote's timeouts of 2 s and one retry it fails in seconds.
    """
    endpoint, server = own_s3
    project.write("data.txt", "x")
    project.ok("add", "data.txt")
    code, err, took = _frozen_push(project, server, endpoint, freeze_after=0)
    assert code == 1, err
    assert took < 30, f"took {took:.0f} s"
    error, hint = err.strip().splitlines()
    assert error.startswith("error: remote 'frozen' (s3://killed/store): checking object"), err
    assert "failed: ReadTimeoutError: Read timeout on endpoint URL" in error, err
    assert hint == (
        "  hint: check that the endpoint is up and answering; a slow one can be given longer "
        "with `conveyor config remote.frozen.read_timeout SECONDS` (see docs/remotes.md)"
    )


def test_an_s3_endpoint_frozen_mid_push_fails_within_the_configured_timeouts(
    project: Project, own_s3: tuple[str, subprocess.Popen[bytes]]
) -> None:
    """Bodies in flight when the server stops: aiohttp waited forever for "100 Continue", and
    then for the stopped server to take in the rest of a body."""
    endpoint, server = own_s3
    for i in range(40):
        project.write(f"data/f{i:03d}.bin", os.urandom(3_000_000))
    project.ok("add", "data")
    code, err, took = _frozen_push(project, server, endpoint, freeze_after=5)
    assert code == 1, err
    assert took < 60, f"took {took:.0f} s"
    error, hint = err.strip().splitlines()
    assert error.startswith("error: remote 'frozen' (s3://killed/store): uploading object"), err
    assert hint.startswith("  hint: check"), err


def test_a_remote_under_a_subfolder_is_a_store_of_its_own_beside_the_shards(
    tmp_path: Path,
) -> None:
    folder = RemoteSpec.of("f", "../store", {}, root=tmp_path / "proj").under("runs")
    assert folder.url == str(tmp_path / "store" / "runs")
    s3 = RemoteSpec.of("s", "s3://b/store/", {"endpoint_url": "http://x"}, root=tmp_path)
    assert s3.under("runs").url == "s3://b/store/runs"
    assert s3.under("runs").options == s3.options
    for bad in ("ab", "a/b", "..", ""):  # a shard's name would mix with the objects
        with pytest.raises(ValueError):
            s3.under(bad)
