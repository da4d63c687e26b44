"""Keep downloaded image bytes: content-addressed, in a local folder or any fsspec URL.

Layout: `DEST/<first 2 hex of sha256>/<sha256>.<ext>`, bytes exactly as downloaded, so the
same photo in two visits or two jobs is stored once. A put is all or nothing: a local file
is written under a temp name and renamed once its bytes are on disk (storage/photo_sync.py);
an object-store put is one whole-object write, durable once answered. A store object holds
no open handles or locks that threads share unsafely, and pickles as its `dest` (each Dask
worker process re-opens its own).
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from retailpulse_cli.errors import ExitCode, RetailpulseError
from retailpulse_cli.storage.photo_sync import Pending, Syncer
from retailpulse_cli.text.redaction import redact, scrub

STORE_FAILED = "store_failed"
S3_EXTRA_HINT = "pip install 'retailpulse[s3]' (in a checkout: pip install -e '.[s3]')"

# Pillow's format names (imaging.Size.format) -> file extension; MPO is a multi-picture JPEG.
EXTENSIONS: dict[str, str] = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tif",
    "AVIF": "avif",
    "HEIF": "heic",
}
TEMP_SUFFIX = ".tmp"  # temp names start with "." too: never mistaken for a stored image

# Local OS errors that will not go away by trying again in a few seconds.
_PERMANENT_ERRNOS = {
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.ENOENT,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
}
_CAUSES = {
    errno.EROFS: "the folder is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system or process limit (disk full?)",
}
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


class StoreFailed(RetailpulseError):
    """An image could not be stored. As a record: `error_code` = `code`, `error` = message."""

    exit_code = ExitCode.STORAGE
    hint = "check --save-images: the folder's permissions and free space, or bucket and credentials"
    code = STORE_FAILED

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class StoreUnavailable(RetailpulseError):
    """The destination needs a library that is not installed (e.g. s3fs for s3://)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Stored:
    """What the results record of a stored image carries."""

    sha256: str
    bytes: int
    stored_as: str  # full path or URL of the object, without credentials
    written: bool  # False when the object was already there (dedupe, resume, retry)


class ImageStore(Protocol):
    dest: str  # as given by the user (re-creates the store: `open_store(store.dest)`)

    def put(self, data: bytes, fmt: str) -> Stored:
        """Store `data` (detected format `fmt`) unless already there; raise StoreFailed."""
        ...

    def ticket(self) -> int:
        """How many objects were put so far: `durable(ticket)` says when they all are."""
        ...

    def durable(self, ticket: int) -> bool:
        """True once the first `ticket` objects put are durable; StoreFailed if they cannot be."""
        ...

    def flush(self) -> None:
        """Wait until every object put so far is durable; raise StoreFailed if it cannot be."""
        ...

    def check(self) -> None:
        """Fail early (StoreFailed) when the destination cannot be written at all."""
        ...


def open_store(dest: str) -> ImageStore:
    """A store for a local folder (plain path or file://) or any fsspec URL (s3://, gs://...)."""
    parts = urlsplit(dest)
    if parts.scheme == "file":
        # file://photos would be the folder "" on host "photos": refuse, do not guess
        if (parts.hostname or "") not in ("", "localhost") or not parts.path.startswith("/"):
            raise StoreUnavailable(
                f"--save-images {redact(dest)}: a file: URL needs an absolute path",
                hint="use file:///absolute/path or a plain folder path",
            )
        return LocalStore(unquote(parts.path), dest=dest)
    if len(parts.scheme) > 1 and "://" in dest:  # one letter would be a Windows drive
        return FsspecStore(dest)
    return LocalStore(dest)


def object_name(data: bytes, fmt: str) -> tuple[str, str]:
    """(sha256 hex, relative name `ab/abcdef....ext`) of an image's bytes."""
    digest = hashlib.sha256(data).hexdigest()
    ext = EXTENSIONS.get(fmt.upper(), "bin")
    return digest, f"{digest[:2]}/{digest}.{ext}"


class LocalStore:
    """A folder on this machine (or a shared mount every cluster worker sees).

    `put` writes the bytes under a temp name and returns; the folder's `Syncer` makes them
    durable and gives them their final name in its own thread (storage/photo_sync.py), so
    the final name appears once the bytes are on disk, and `flush` or `durable` tell when.
    """

    def __init__(self, root: str | os.PathLike[str], *, dest: str | None = None) -> None:
        self.root = Path(root).expanduser().absolute()
        self.dest = dest if dest is not None else str(root)
        self.root_str = str(self.root)
        self.syncer = Syncer(self.root_str, self._sync_failure)
        self._folders: set[str] = set()  # the hash-prefix folders known to exist

    def __reduce__(self) -> tuple[Any, ...]:
        # The absolute folder: a worker process may run in another working directory.
        return (LocalStore, (str(self.root),), {"dest": self.dest})

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe.{secrets.token_hex(8)}{TEMP_SUFFIX}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise self._failure(exc, self.root) from None

    def put(self, data: bytes, fmt: str) -> Stored:
        # Plain str paths: this runs for every image, in the download threads, under the GIL.
        digest, name = object_name(data, fmt)
        final = f"{self.root_str}/{name}"
        stored = Stored(digest, len(data), final, written=False)
        if self.syncer.in_flight(final):  # another thread wrote it a moment ago
            return stored
        try:
            if os.stat(final).st_size == len(data):
                self.syncer.found(final)
                return stored
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._failure(exc, final) from None
        try:
            temp = self._write_temp(final, data)
        except OSError as exc:
            raise self._failure(exc, final) from None
        self.syncer.hand_over(Pending(final, temp))
        return Stored(digest, len(data), final, written=True)

    def _write_temp(self, final: str, data: bytes) -> str:
        folder = os.path.dirname(final)
        if folder not in self._folders:  # 256 of them: one stat each per store, not per image
            if not os.path.isdir(folder):
                os.makedirs(folder, exist_ok=True)
                self.syncer.new_dir(folder)
            self._folders.add(folder)
        try:
            return _write_temp(final, data)
        except FileNotFoundError:  # the folder was removed under us: make it again
            self._folders.discard(folder)
            os.makedirs(folder, exist_ok=True)
            self.syncer.new_dir(folder)
            return _write_temp(final, data)

    def ticket(self) -> int:
        return self.syncer.ticket()

    def durable(self, ticket: int) -> bool:
        return self.syncer.durable(ticket)

    def flush(self) -> None:
        self.syncer.wait()

    def _failure(self, exc: OSError, path: str | Path) -> StoreFailed:
        cause = _CAUSES.get(exc.errno or 0) or exc.strerror or str(exc)
        retryable = exc.errno not in _PERMANENT_ERRNOS
        return StoreFailed(
            f"cannot store image in {self.root}: {cause} ({path})", retryable=retryable
        )

    def _sync_failure(self, exc: OSError, path: str) -> Exception:
        cause = _CAUSES.get(exc.errno or 0) or exc.strerror or str(exc)
        return StoreFailed(
            f"cannot make the images stored in {self.root} durable: {cause} ({path})"
        )


def _write_temp(final: str, data: bytes) -> str:
    """Write `data` under a temp name beside `final`; the syncer renames it once durable.

    A kill -9 leaves at most a hidden `.<sha>.<random>.tmp`, never read as an image.
    """
    folder, name = os.path.split(final)
    temp = f"{folder}/.{name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    return temp


class FsspecStore:
    """Any fsspec file system: S3 (s3fs), GCS (gcsfs), Azure (adlfs)... Opened lazily."""

    def __init__(self, url: str) -> None:
        self.dest = url
        self.shown = redact(url).rstrip("/")
        self.protocol = urlsplit(url).scheme
        self._fs: Any = None
        self._root = ""
        self._lock = threading.Lock()
        _require_backend(self.protocol)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open_store, (self.dest,))

    def _filesystem(self) -> tuple[Any, str]:
        with self._lock:  # one fs object per store, shared by the download threads
            if self._fs is None:
                fsspec = importlib.import_module("fsspec")  # untyped; imported only when used
                # Its own instance: fsspec's cache would share one (and its credentials)
                # between every store with the same URL in this process.
                self._fs, root = fsspec.core.url_to_fs(self.dest, skip_instance_cache=True)
                self._root = root.rstrip("/")
            return self._fs, self._root

    def check(self) -> None:
        try:
            fs, root = self._filesystem()
            bucket = root.split("/", 1)[0]
            if hasattr(fs, "call_s3"):  # S3: HEAD the bucket; exists() hides why it failed
                try:
                    fs.call_s3("head_bucket", Bucket=bucket)
                except FileNotFoundError:
                    raise FileNotFoundError(f"bucket {bucket!r} does not exist") from None
            elif self.protocol in ("gs", "gcs") and not fs.exists(bucket):
                raise FileNotFoundError(f"bucket {bucket!r} does not exist")
        except Exception as exc:
            raise self._failure(exc) from None

    def put(self, data: bytes, fmt: str) -> Stored:
        digest, name = object_name(data, fmt)
        try:
            fs, root = self._filesystem()
            path = f"{root}/{name}" if root else name
            if _size_or_none(fs, path) == len(data):
                return Stored(digest, len(data), f"{self.shown}/{name}", written=False)
            fs.pipe_file(path, data)  # one whole-object PUT: complete or absent
        except Exception as exc:
            raise self._failure(exc) from None
        return Stored(digest, len(data), f"{self.shown}/{name}", written=True)

    def ticket(self) -> int:
        return 0  # an object store's PUT is durable once it has answered

    def durable(self, ticket: int) -> bool:
        return True

    def flush(self) -> None:
        """Nothing to do: an object store's PUT is durable once it has answered."""

    def _failure(self, exc: BaseException) -> StoreFailed:
        cause, retryable = _describe_remote(exc)
        message = redact_text(f"cannot store image in {self.shown}: {cause}", self.dest)
        return StoreFailed(message, retryable=retryable)


def _size_or_none(fs: Any, path: str) -> int | None:
    """Size of an existing object, None when absent: one HEAD on S3 (`info` adds a LIST)."""
    try:
        if hasattr(fs, "call_s3") and hasattr(fs, "split_path"):
            bucket, key, _ = fs.split_path(path)
            size = fs.call_s3("head_object", Bucket=bucket, Key=key).get("ContentLength")
        else:
            size = fs.info(path).get("size")
    except FileNotFoundError:
        return None
    return size if isinstance(size, int) else None


def _require_backend(protocol: str) -> None:
    """Import fsspec and the protocol's package now, so a missing extra is one clear line."""
    try:
        fsspec = importlib.import_module("fsspec")
        fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        raise StoreUnavailable(
            f"--save-images {protocol}:// needs fsspec and the {protocol} driver ({exc})",
            hint=S3_EXTRA_HINT
            if protocol in ("s3", "s3a")
            else "install the package the message names (fsspec's driver for this protocol)",
        ) from None
    except ValueError as exc:
        raise StoreUnavailable(
            f"--save-images: unknown storage protocol {protocol!r}",
            hint="use a local folder or an fsspec URL such as s3://bucket/prefix",
        ) from exc


def _describe_remote(exc: BaseException) -> tuple[str, bool]:
    """One line and a retryable flag for an fsspec/botocore failure."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return f"{text} (create the bucket or fix the --save-images URL)", False
    if isinstance(exc, PermissionError):
        return (
            f"access denied ({text}): check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, "
            "instance role) and the bucket policy",
            False,
        )
    if isinstance(exc, (ValueError, TypeError, NotADirectoryError, IsADirectoryError)):
        return f"{type(exc).__name__}: {text}", False
    # Connection errors, timeouts, throttling and 5xx: another attempt may well succeed.
    return f"{type(exc).__name__}: {text}", True


def redact_text(text: str, url: str) -> str:
    """Remove the URL's and the environment's credentials from a library's message."""
    text = scrub(text, url)
    for name in _SECRET_ENV:
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
