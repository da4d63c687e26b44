"""--save-images storage: a real local folder, real mounts, a real S3 API server (moto)."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retailpulse_cli.errors import ExitCode
from retailpulse_cli.processing.imaging import measure
from retailpulse_cli.storage.image_archive import (
    TEMP_SUFFIX,
    FsspecStore,
    LocalStore,
    StoreFailed,
    open_store,
)

from .imageserver import image_bytes
from .s3server import SECRET, S3Server

REPO = Path(__file__).resolve().parent.parent


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_content_addressed(root: Path) -> None:
    """Every visible file holds exactly the bytes its name says; no temp file is visible."""
    for path in files_under(root):
        if path.name.startswith("."):
            assert path.name.endswith(TEMP_SUFFIX), path
            continue
        digest = path.name.split(".")[0]
        assert path.parent.name == digest[:2]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"partial {path}"


# ---------------------------------------------------------------- local folder


@pytest.mark.parametrize(
    ("ext", "stored_ext"),
    [("jpg", "jpg"), ("png", "png"), ("webp", "webp"), ("gif", "gif"), ("bmp", "bmp"),
     ("tiff", "tif")],
)  # fmt: skip
def test_layout_is_sha256_and_detected_format(tmp_path: Path, ext: str, stored_ext: str) -> None:
    data = image_bytes(64, 48, ext)
    fmt = measure(data, max_pixels=10**8).format  # the format the pipeline detected
    store = open_store(str(tmp_path / "photos"))
    stored = store.put(data, fmt)
    store.flush()  # the final name appears once the bytes are on disk
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / "photos" / digest[:2] / f"{digest}.{stored_ext}"
    assert path.read_bytes() == data  # exactly as downloaded, not re-encoded
    assert (stored.sha256, stored.bytes, stored.stored_as) == (digest, len(data), str(path))
    assert stored.written
    assert files_under(tmp_path / "photos") == [path]


def test_file_url_is_a_local_folder(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/by-url")
    assert isinstance(store, LocalStore)
    stored = store.put(b"\xff\xd8 not checked here", "MPO")
    assert stored.stored_as.startswith(str(tmp_path / "by-url"))
    assert stored.stored_as.endswith(".jpg")


def test_same_bytes_twice_is_one_file_not_rewritten(tmp_path: Path) -> None:
    data = image_bytes(320, 240, "jpg")
    job1 = open_store(str(tmp_path))
    first = job1.put(data, "JPEG")
    job1.flush()
    before = os.stat(first.stored_as)
    time.sleep(0.01)
    again = open_store(str(tmp_path)).put(data, "JPEG")  # another visit, another job, resume
    after = os.stat(again.stored_as)
    assert again == first.__class__(first.sha256, first.bytes, first.stored_as, written=False)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert len(files_under(tmp_path)) == 1


def test_a_truncated_leftover_is_replaced(tmp_path: Path) -> None:
    data = image_bytes(320, 240, "png")
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / digest[:2] / f"{digest}.png"
    path.parent.mkdir()
    path.write_bytes(data[:100])  # e.g. copied in by hand, cut short
    store = open_store(str(tmp_path))
    stored = store.put(data, "PNG")
    store.flush()
    assert stored.written
    assert path.read_bytes() == data


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    blobs = [os.urandom(50_000) for _ in range(20)]
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(60):
                store.put(blobs[(seed + i) % len(blobs)], "JPEG")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.flush()
    assert not errors
    assert len(files_under(tmp_path)) == len(blobs)  # no temp file left behind
    assert_content_addressed(tmp_path)


def test_store_pickles_as_its_absolute_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shipped = pickle.dumps(open_store("photos"))  # relative, as typed by a user
    monkeypatch.chdir(tmp_path.parent)  # a Dask worker runs elsewhere
    store = pickle.loads(shipped)
    assert store.dest == "photos"
    assert store.put(b"abc", "PNG").stored_as.startswith(str(tmp_path / "photos"))


CRASH_WRITER = """
import os, sys
from retailpulse_cli.storage.image_archive import open_store
store = open_store(sys.argv[1])
while True:
    store.put(os.urandom(32 * 1024 * 1024), "JPEG")
"""


def test_kill_9_mid_write_leaves_no_partial_image(tmp_path: Path) -> None:
    dest = tmp_path / "photos"
    proc = subprocess.Popen([sys.executable, "-c", CRASH_WRITER, str(dest)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill while some file is part-written
            sizes = [p.stat().st_size for p in files_under(dest)] if dest.exists() else []
            if len(sizes) > 1 and any(0 < n < 32 * 1024 * 1024 for n in sizes):
                break
            time.sleep(0.002)
        else:
            pytest.fail("the writer never got going")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert_content_addressed(dest)  # a leftover temp file is hidden; every final name is whole
    store = open_store(str(dest))
    stored = store.put(b"after the crash", "PNG")
    store.flush()
    assert Path(stored.stored_as).read_bytes() == b"after the crash"


def test_a_photo_that_cannot_be_synced_fails_the_flush_and_gets_no_name(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    stored = store.put(image_bytes(64, 48, "png"), "PNG")
    ticket = store.ticket()
    for temp in tmp_path.rglob(f"*{TEMP_SUFFIX}"):  # gone before the syncer got to it
        temp.unlink()
    with pytest.raises(StoreFailed) as caught:
        store.flush()
    assert caught.value.message.startswith(f"cannot make the images stored in {tmp_path} durable")
    assert caught.value.exit_code == ExitCode.STORAGE
    with pytest.raises(StoreFailed):
        store.durable(ticket)  # a record naming it is never written
    assert not Path(stored.stored_as).exists()


def test_folder_under_a_file_is_store_failed(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    store = open_store(str(tmp_path / "afile" / "photos"))
    with pytest.raises(StoreFailed) as caught:
        store.put(b"abc", "JPEG")
    err = caught.value
    assert err.code == "store_failed"
    assert not err.retryable
    assert "a part of the path is a file, not a folder" in err.message
    assert str(tmp_path / "afile" / "photos") in err.message
    assert "\n" not in err.message
    with pytest.raises(StoreFailed):
        store.check()


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write: a read-only mount as root (chmod does not stop root)."""
    where = tmp_path / "ro"
    if _mount_tmpfs(where, "ro,size=1m"):
        yield where
        subprocess.run(["umount", str(where)], check=True)
    elif os.geteuid() != 0:
        where.chmod(0o555)
        yield where
        where.chmod(0o755)
    else:
        pytest.skip("root without permission to mount: no way to make a read-only folder")


def test_read_only_folder_is_store_failed(read_only_dir: Path) -> None:
    store = open_store(str(read_only_dir))
    with pytest.raises(StoreFailed) as caught:
        store.put(image_bytes(64, 48, "jpg"), "JPEG")
    assert caught.value.exit_code == ExitCode.STORAGE
    assert "read-only file system" in caught.value.message or "permission" in caught.value.message
    assert str(read_only_dir) in caught.value.message
    with pytest.raises(StoreFailed):
        store.check()
    assert files_under(read_only_dir) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "tiny"
    if not _mount_tmpfs(where, "size=64k"):
        pytest.skip("cannot mount a small tmpfs here (needs root); the RLIMIT test covers it")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def test_disk_full_is_store_failed_with_nothing_partial(tiny_disk: Path) -> None:
    store = open_store(str(tiny_disk))
    small = store.put(b"fits", "PNG")  # the folder works...
    store.flush()
    with pytest.raises(StoreFailed) as caught:
        store.put(os.urandom(200_000), "JPEG")  # ...until the disk is full
    assert "no space left on the device (disk full)" in caught.value.message
    assert files_under(tiny_disk) == [Path(small.stored_as)]  # no partial, no temp file


FSIZE_WRITER = """
import resource, signal, sys
from retailpulse_cli.storage.image_archive import StoreFailed, open_store
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG rather than being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    open_store(sys.argv[1]).put(b"x" * 300_000, "JPEG")
except StoreFailed as exc:
    print(exc.code, exc.message)
"""


def test_file_size_limit_is_store_failed_with_nothing_partial(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FSIZE_WRITER, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr == ""
    assert done.stdout.startswith("store_failed cannot store image in ")
    assert "file too large" in done.stdout
    assert files_under(tmp_path) == []


# ---------------------------------------------------------------- missing extra

MISSING_S3FS = """
import sys
sys.modules["s3fs"] = None  # as if `pip install 'retailpulse[s3]'` had not been run
from retailpulse_cli.storage.image_archive import StoreUnavailable, open_store
try:
    open_store("s3://bucket/prefix")
except StoreUnavailable as exc:
    print(int(exc.exit_code), exc.message, "|", exc.hint)
"""


def test_s3_without_the_extra_names_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", MISSING_S3FS], cwd=REPO, capture_output=True, text=True
    )
    assert done.stderr == ""
    assert done.stdout.startswith(f"{int(ExitCode.USAGE)} --save-images s3:// needs fsspec")
    assert "pip install 'retailpulse[s3]'" in done.stdout
    assert "pip install -e '.[s3]'" in done.stdout  # the form that works in a checkout


# ---------------------------------------------------------------- S3 (moto server)


def _bucket(s3: S3Server, name: str) -> Any:
    client = s3.client("s3")
    client.create_bucket(Bucket=name)
    return client


def test_s3_objects_are_the_downloaded_bytes_under_hash_names(s3: S3Server) -> None:
    client = _bucket(s3, "shelf-photos")
    store = open_store("s3://shelf-photos/field/2026")
    images = [image_bytes(640, 480, "jpg"), image_bytes(320, 240, "png")]
    stored = [store.put(images[0], "JPEG"), store.put(images[1], "PNG")]
    for data, rec, ext in zip(images, stored, ["jpg", "png"], strict=True):
        digest = hashlib.sha256(data).hexdigest()
        key = f"field/2026/{digest[:2]}/{digest}.{ext}"
        assert rec.stored_as == f"s3://shelf-photos/{key}"
        assert (rec.sha256, rec.bytes, rec.written) == (digest, len(data), True)
        assert client.get_object(Bucket="shelf-photos", Key=key)["Body"].read() == data
    listed = client.list_objects_v2(Bucket="shelf-photos")["Contents"]
    assert len(listed) == 2


def test_s3_does_not_upload_again(s3: S3Server) -> None:
    client = _bucket(s3, "resume-bucket")
    data = image_bytes(800, 600, "jpg")
    first = open_store("s3://resume-bucket/p").put(data, "JPEG")
    key = first.stored_as.removeprefix("s3://resume-bucket/")
    etag = client.head_object(Bucket="resume-bucket", Key=key)["LastModified"]
    assert s3.puts(f"/resume-bucket/{key}") == 1
    # a resume or retry, in a fresh process's store (pickled as for a Dask worker)
    again = pickle.loads(pickle.dumps(open_store("s3://resume-bucket/p"))).put(data, "JPEG")
    assert not again.written
    assert again.stored_as == first.stored_as
    assert s3.puts(f"/resume-bucket/{key}") == 1  # the server saw no second PUT
    assert client.head_object(Bucket="resume-bucket", Key=key)["LastModified"] == etag


def test_s3_missing_bucket_is_store_failed(s3: S3Server) -> None:
    store = open_store("s3://no-such-bucket/photos")
    with pytest.raises(StoreFailed) as caught:
        store.put(b"abc", "JPEG")
    err = caught.value
    assert err.code == "store_failed"
    assert not err.retryable
    assert err.message == (
        "cannot store image in s3://no-such-bucket/photos: The specified bucket does not exist "
        "(create the bucket or fix the --save-images URL)"
    )
    with pytest.raises(StoreFailed, match="does not exist"):
        store.check()


def test_s3_denied_credentials_are_store_failed_without_the_secret(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bucket(s3, "locked")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # right key id, wrong secret
    with pytest.raises(StoreFailed) as caught:
        open_store("s3://locked/p").put(b"abc", "JPEG")
    message = caught.value.message
    assert message.startswith("cannot store image in s3://locked/p: access denied")
    assert "check the credentials" in message
    assert SECRET not in message and SECRET not in repr(caught.value)
    assert s3.secret not in message
    assert s3.puts("/locked/p/") == 0  # refused at the first request: nothing written


def test_s3_store_is_picklable_without_connecting() -> None:
    pytest.importorskip("s3fs")
    store = open_store("s3://some-bucket/prefix")
    assert isinstance(store, FsspecStore)
    clone = pickle.loads(pickle.dumps(store))
    assert clone.dest == "s3://some-bucket/prefix"


def test_check_passes_on_usable_destinations(s3: S3Server, tmp_path: Path) -> None:
    _bucket(s3, "ready")
    open_store("s3://ready/prefix").check()
    open_store(str(tmp_path / "new" / "folder")).check()  # created, probe file removed
    assert (tmp_path / "new" / "folder").is_dir()
    assert files_under(tmp_path / "new") == []
