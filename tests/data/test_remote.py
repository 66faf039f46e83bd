"""Remotes: configuration, the Remote contract (folder, memory, S3 on loopback), and errors."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.data.hashing import hash_bytes
from conveyor.data.remote import MissingObject, RemoteSpec, absolute_url, storage_options
from conveyor.data.remote_fsspec import FsspecRemote, plan_checks
from conveyor.foundation.errors import RemoteError
from tests.conftest import Project

# -- the S3-compatible server (moto) on loopback -----------------------------------------------
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 API (moto's standalone server) on 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on stderr
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; dummy credentials come from the environment, as a user's would."""
    import boto3

    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    bucket = f"conveyor-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return bucket


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
    }
    # Other backends get their options as written.
    assert storage_options("gs", {"project": "p", "token": "anon"}) == {
        "project": "p",
        "token": "anon",
    }


def test_plan_lists_a_shard_when_that_is_cheaper_than_one_request_per_object() -> None:
    groups = {"aa": ["aa1", "aa2", "aa3"], "bb": ["bb1"], "cc": ["cc1", "cc2"]}
    # Small shards (one page each): every shard is listed.
    assert plan_checks(groups, per_shard=10) == (["aa", "bb", "cc"], [])
    # Shards of ~2500 objects cost 3 pages: only a shard with 3+ wanted objects is listed.
    assert plan_checks(groups, per_shard=2500) == (["aa"], ["bb1", "cc1", "cc2"])


# -- the Remote contract, run over every backend ---------------------------------------------
@pytest.fixture(params=["folder", "memory", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> FsspecRemote:
    if request.param == "folder":
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


def _objects(tmp_path: Path, count: int) -> dict[str, Path]:
    out = {}
    for i in range(count):
        data = f"object {i}\n".encode() * (i + 1)
        path = tmp_path / f"src{i}"
        path.write_bytes(data)
        out[hash_bytes(data)] = path
    return out


def test_contract_upload_exists_download(remote: FsspecRemote, tmp_path: Path) -> None:
    objects = _objects(tmp_path, 3)
    assert remote.exists_many(objects) == set()
    for oid, path in objects.items():
        remote.upload(str(path), oid)
    assert remote.exists_many([*objects, "0" * 64]) == set(objects)
    for oid, path in objects.items():
        dest = tmp_path / f"dest-{oid}"
        remote.download(oid, str(dest))
        assert dest.read_bytes() == path.read_bytes()
    with pytest.raises(MissingObject, match="not on remote"):
        remote.download("0" * 64, str(tmp_path / "nothing"))


def test_contract_many_objects_are_checked_by_listing(remote: FsspecRemote, tmp_path: Path) -> None:
    objects = _objects(tmp_path, 40)
    stored = sorted(objects)[::2]
    for oid in stored:
        remote.upload(str(objects[oid]), oid)
    absent = [hash_bytes(f"absent {i}".encode()) for i in range(40)]
    assert remote.exists_many([*objects, *absent]) == set(stored)


def test_contract_iter_oids_and_remove(remote: FsspecRemote, tmp_path: Path) -> None:
    objects = _objects(tmp_path, 5)
    for oid, path in objects.items():
        remote.upload(str(path), oid)
    # Things that are not objects are never reported (a temp file, a stray note).
    junk = tmp_path / "junk"
    junk.write_bytes(b"junk")
    remote.fs.put_file(str(junk), f"{remote.root}/README")
    remote.fs.put_file(str(junk), f"{remote.path(next(iter(objects)))}.1234.tmp")
    assert sorted(remote.iter_oids()) == sorted(objects)
    gone = sorted(objects)[:2]
    remote.remove([*gone, "0" * 64])  # an oid that is not there is ignored
    assert sorted(remote.iter_oids()) == sorted(objects)[2:]
    assert remote.exists_many(objects) == set(sorted(objects)[2:])


def test_contract_concurrent_uploads_of_one_object(remote: FsspecRemote, tmp_path: Path) -> None:
    (oid, path), *_ = _objects(tmp_path, 1).items()
    threads = [threading.Thread(target=remote.upload, args=(str(path), oid)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    remote.download(oid, str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == path.read_bytes()
    assert list(remote.iter_oids()) == [oid]


def test_contract_failed_upload_leaves_nothing(remote: FsspecRemote, tmp_path: Path) -> None:
    oid = hash_bytes(b"never written")
    with pytest.raises(RemoteError, match=f"remote {remote.name!r}"):
        remote.upload(str(tmp_path / "does-not-exist"), oid)
    assert remote.exists_many([oid]) == set()
    assert list(remote.iter_oids()) == []
    if not remote.spec.atomic_put and remote.fs.exists(f"{remote.root}/{oid[:2]}"):
        assert remote.fs.ls(f"{remote.root}/{oid[:2]}") == []  # no temp file left behind


def test_empty_or_absent_remote_holds_nothing(tmp_path: Path) -> None:
    spec = RemoteSpec.of("nowhere", str(tmp_path / "absent"), {}, root=tmp_path)
    remote = FsspecRemote(spec)
    assert remote.exists_many([hash_bytes(str(i).encode()) for i in range(30)]) == set()
    assert list(remote.iter_oids()) == []


# -- errors a user meets, through the CLI ------------------------------------------------------
def test_unknown_remote(project: Project) -> None:
    project.ok("remote", "add", "store", "../store")
    result = project.run("push", "-r", "stroe")
    assert result.code == 2
    assert "unknown remote 'stroe'; known: store" in result.err
    assert "did you mean 'store'?" in result.err
    assert "Traceback" not in result.err


def test_no_default_remote(project: Project) -> None:
    result = project.run("pull")
    assert result.code == 2
    assert "no remote given and no default remote set" in result.err
    assert "conveyor remote add --default NAME URL" in result.err
    project.ok("remote", "add", "store", "../store")
    result = project.run("push")
    assert result.code == 2
    assert "pass -r NAME, or set a default with `conveyor remote default NAME`" in result.err


def test_default_remote_that_was_removed(project: Project) -> None:
    project.ok("remote", "add", "store", "../store")
    project.ok("config", "core.remote", "gone")
    result = project.run("push")
    assert result.code == 2
    assert "unknown remote 'gone' (the default, core.remote)" in result.err


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
    assert "-r, --remote NAME" in proc.stdout


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
