"""Measuring images (issue 2, "Processing", "Reading back"): exact perimeters per format over
real HTTP, per-image error codes, local files, and the `status --json` / `results` shapes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from retailpulse_cli.processing.imaging import ImageFailure, measure, truncation

from .conftest import KNOWN, Cli, jobs_in, results_of, unstamped, visit, write_job
from .imageserver import FORMATS, ImageServer, image_bytes

JOB_FAILED_EXIT = 1
SIZES = [(1, 1), (37, 23), (640, 480), (999, 1001)]


def submit(cli: Cli, job: Path, *extra: str) -> Any:
    return cli("submit", str(job), "--gpu-delay", "0", "--retries", "0", *extra)


def by_url(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["image_url"]: r for r in records}


# -- exact sizes over real HTTP ---------------------------------------------------------------


def test_perimeter_exact_for_every_format_and_size(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    expected: dict[str, tuple[int, int, str]] = {}
    visits = []
    for i, ext in enumerate(FORMATS):
        urls = [server.url(f"/img/{w}x{h}.{ext}") for w, h in SIZES]
        expected.update({u: (w, h, FORMATS[ext]) for u, (w, h) in zip(urls, SIZES, strict=True)})
        visits.append(visit(KNOWN[i % len(KNOWN)], *urls))
    job = write_job(tmp_path / "job.json", visits)
    result = submit(cli, job)
    assert result.exit_code == 0, result.stderr
    records = results_of(env, result.stdout.strip())
    assert len(records) == len(expected) == 4 * len(FORMATS)
    got = by_url(records)
    assert set(got) == set(expected)
    for url, (w, h, fmt) in expected.items():
        rec = got[url]
        assert rec["status"] == "ok", rec
        assert (rec["width"], rec["height"]) == (w, h), url
        assert rec["perimeter"] == 2 * (w + h), url
        assert rec["format"] == fmt, url


def test_wide_and_tall_images_are_not_swapped(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    wide, tall = server.url("/img/300x20.png"), server.url("/img/20x300.jpg")
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], wide, tall)])
    result = submit(cli, job)
    assert result.exit_code == 0, result.stderr
    got = by_url(results_of(env, result.stdout.strip()))
    assert (got[wide]["width"], got[wide]["height"]) == (300, 20)
    assert (got[tall]["width"], got[tall]["height"]) == (20, 300)
    assert got[wide]["perimeter"] == got[tall]["perimeter"] == 640


# -- failures are per image, with a code, and the rest goes on --------------------------------


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "gif", "bmp", "tiff", "avif"])
def test_truncated_image(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path, ext: str
) -> None:
    bad = server.url(f"/truncated/640x480.{ext}")
    good = server.url(f"/img/50x70.{ext}")
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], bad, good)])
    result = submit(cli, job)
    assert result.exit_code == JOB_FAILED_EXIT, result.stderr
    got = by_url(results_of(env, result.stdout.strip()))
    assert got[bad]["status"] == "failed"
    assert got[bad]["error_code"] == "truncated_image", got[bad]
    assert got[bad]["error"]
    assert "perimeter" not in got[bad]
    assert got[good]["status"] == "ok"
    assert got[good]["perimeter"] == 240


@pytest.mark.parametrize(
    ("route", "code"),
    [
        ("/notimage", "not_an_image"),
        ("/status/404", "http_404"),
        ("/status/500", "http_5xx"),
        ("/status/503", "http_5xx"),
    ],
)
def test_failed_download_or_decode(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path, route: str, code: str
) -> None:
    bad, good = server.url(route), server.url("/img/51x71.png")
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], bad), visit(KNOWN[1], good)])
    result = submit(cli, job)
    assert result.exit_code == JOB_FAILED_EXIT, result.stderr
    job_id = result.stdout.strip()
    got = by_url(results_of(env, job_id))
    assert got[bad]["status"] == "failed"
    assert got[bad]["error_code"] == code, got[bad]
    assert isinstance(got[bad]["error"], str) and got[bad]["error"]
    assert got[good]["status"] == "ok" and got[good]["perimeter"] == 244

    doc = json.loads(cli("status", job_id, "--json").stdout)
    assert doc["status"] == "failed"
    assert [e["store_id"] for e in doc["error"]] == [KNOWN[0]]
    assert code in doc["error"][0]["error"]


def test_connection_refused_is_a_per_image_error(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bad, good = f"http://127.0.0.1:{port}/x.png", server.url("/img/52x72.png")
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], bad, good)])
    result = submit(cli, job)
    assert result.exit_code == JOB_FAILED_EXIT, result.stderr
    got = by_url(results_of(env, result.stdout.strip()))
    assert got[bad]["error_code"] == "connection_error"
    assert got[good]["perimeter"] == 248


@pytest.mark.parametrize(
    "url", ["ftp://x/y.jpg", "s3://bucket/key.png", "gopher://example.org/1.gif"]
)
def test_unsupported_scheme_is_a_per_image_error(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path, url: str
) -> None:
    good = server.url("/img/53x73.jpg")
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], url, good)])
    result = submit(cli, job)
    assert result.exit_code == JOB_FAILED_EXIT, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    got = by_url(results_of(env, result.stdout.strip()))
    assert got[url]["status"] == "failed"
    assert got[url]["error_code"] == "unsupported_scheme"
    assert got[good]["perimeter"] == 252


@pytest.mark.parametrize(
    ("url", "flags"),
    [
        ("shelf\u0000.png", ()),  # a path: open() raised ValueError('embedded null byte')
        ("file:///tmp/shelf%00.png", ()),  # a file URL, the NUL percent-encoded
        ("http://exa\u0000mple.test/x.png", ("--block-private-networks",)),
        ("http://" + "a" * 64 + ".test/x.png", ("--block-private-networks",)),  # label > 63
        ("http://bad..name.test/x.png", ("--block-private-networks",)),  # an empty label
    ],
    ids=["nul-in-path", "nul-in-file-url", "nul-in-host", "label-too-long", "empty-label"],
)
def test_a_url_no_file_or_resolver_can_take_is_invalid_url_not_a_bug(
    cli: Any, env: dict[str, str], tmp_path: Path, url: str, flags: tuple[str, ...]
) -> None:
    """Issue 17, finding 12: these were `internal_error` ("a bug", says the README)."""
    Image.new("RGB", (54, 73)).save(tmp_path / "good.png")  # local: not a private address
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], url, "good.png")])
    result = submit(cli, job, *flags)
    assert result.exit_code == JOB_FAILED_EXIT, result.stdout + result.stderr
    got = by_url(results_of(env, result.stdout.strip()))
    assert got[url]["error_code"] == "invalid_url", got[url]
    assert got[url]["attempts"] <= 1 and "Error" not in got[url]["error"]
    assert got["good.png"]["perimeter"] == 254


# -- local files --------------------------------------------------------------------------------


def save(path: Path, size: tuple[int, int], fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 60, 90)).save(path, fmt)
    return path


def test_relative_paths_resolve_against_the_job_files_folder(
    cli: Cli, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs_folder = tmp_path / "batch" / "jobs"
    save(jobs_folder / "photos" / "shelf.png", (123, 45), "PNG")
    save(tmp_path / "batch" / "images" / "aisle.jpg", (321, 54), "JPEG")
    save(jobs_folder / "here.webp", (10, 11), "WEBP")
    write_job(
        jobs_folder / "job.json",
        [visit(KNOWN[0], "photos/shelf.png", "../images/aisle.jpg", "./here.webp")],
    )
    # run from an unrelated folder that holds decoys with the same relative names
    elsewhere = tmp_path / "elsewhere"
    save(elsewhere / "photos" / "shelf.png", (5, 5), "PNG")
    save(elsewhere / "here.webp", (6, 6), "WEBP")
    monkeypatch.chdir(elsewhere)
    result = submit(cli, Path("..") / "batch" / "jobs" / "job.json")
    assert result.exit_code == 0, result.stderr
    got = by_url(results_of(env, result.stdout.strip()))
    assert got["photos/shelf.png"]["perimeter"] == 2 * (123 + 45)
    assert got["../images/aisle.jpg"]["perimeter"] == 2 * (321 + 54)
    assert got["./here.webp"]["perimeter"] == 2 * (10 + 11)


def test_file_url_and_absolute_path(cli: Cli, env: dict[str, str], tmp_path: Path) -> None:
    gif = save(tmp_path / "pics dir" / "promo.gif", (88, 66), "GIF")
    bmp = save(tmp_path / "pics" / "fridge.bmp", (12, 200), "BMP")
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], gif.as_uri(), str(bmp))])
    result = submit(cli, job)
    assert result.exit_code == 0, result.stderr
    got = by_url(results_of(env, result.stdout.strip()))
    assert "%20" in gif.as_uri()
    assert got[gif.as_uri()]["perimeter"] == 2 * (88 + 66)
    assert got[str(bmp)]["perimeter"] == 2 * (12 + 200)


def test_missing_local_file_is_a_per_image_error(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    save(tmp_path / "ok.png", (20, 30), "PNG")
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], "missing.png", "ok.png")])
    result = submit(cli, job)
    assert result.exit_code == JOB_FAILED_EXIT, result.stderr
    got = by_url(results_of(env, result.stdout.strip()))
    assert got["missing.png"]["status"] == "failed"
    assert got["missing.png"]["error_code"] == "file_not_found"
    assert got["ok.png"]["perimeter"] == 100


# -- the shapes users and clients read back ----------------------------------------------------


def test_status_json_shape_for_a_failed_job(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path / "job.json",
        [
            visit(KNOWN[0], server.url("/img/54x74.png"), server.url("/status/404")),
            visit(KNOWN[1], server.url("/img/54x74.jpg")),
            visit("S99999999", server.url("/img/54x74.gif")),
        ],
    )
    result = submit(cli, job)
    assert result.exit_code == JOB_FAILED_EXIT, result.stderr
    job_id = result.stdout.strip()
    status = cli("status", job_id, "--json")
    assert status.exit_code == 0, status.stderr
    doc = json.loads(status.stdout)  # stdout holds the JSON and nothing else
    assert doc["job_id"] == job_id
    assert doc["status"] == "failed"
    assert isinstance(doc["error"], list)
    assert all(isinstance(e["store_id"], str) and isinstance(e["error"], str) for e in doc["error"])
    assert sorted(e["store_id"] for e in doc["error"]) == sorted([KNOWN[0], "S99999999"])


def test_status_json_for_a_completed_job(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], server.url("/img/55x75.webp"))])
    result = submit(cli, job)
    assert result.exit_code == 0, result.stderr
    job_id = result.stdout.strip()
    assert jobs_in(env) == [job_id]
    doc = json.loads(cli("status", job_id, "--json").stdout)
    assert doc["job_id"] == job_id
    assert doc["status"] == "completed"
    assert not doc.get("error")


def test_submit_json_prints_the_final_status(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], server.url("/status/404"))])
    result = submit(cli, job, "--json")
    assert result.exit_code == JOB_FAILED_EXIT, result.stderr
    doc = json.loads(result.stdout)
    assert doc["job_id"] == jobs_in(env)[0]
    assert doc["status"] == "failed"
    assert [e["store_id"] for e in doc["error"]] == [KNOWN[0]]


def test_results_prints_one_json_object_per_image(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    ok_url, bad_url = server.url("/img/56x76.bmp"), server.url("/notimage")
    unknown_url = server.url("/img/56x77.png")
    job = write_job(
        tmp_path / "job.json",
        [
            visit(KNOWN[0], ok_url, bad_url, when="28 Nov, late afternoon"),
            visit("S-UNKNOWN", unknown_url),
        ],
    )
    result = submit(cli, job)
    assert result.exit_code == JOB_FAILED_EXIT, result.stderr
    out = cli("results", result.stdout.strip())
    assert out.exit_code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records)
    got = by_url(records)
    ok = got[ok_url]
    assert ok["store_id"] == KNOWN[0]
    assert ok["visit_time"] == "28 Nov, late afternoon"
    assert (ok["width"], ok["height"], ok["perimeter"]) == (56, 76, 264)
    bad = got[bad_url]
    assert bad["store_id"] == KNOWN[0]
    assert bad["error_code"] == "not_an_image" and bad["error"]
    assert "perimeter" not in bad
    unknown = got[unknown_url]
    assert unknown["store_id"] == "S-UNKNOWN"
    assert unknown["error_code"] and unknown["error"]


def test_unknown_job_id(cli: Cli, env: dict[str, str]) -> None:
    for command in ("status", "results"):
        result = cli(command, "20990101-000000-abcdef")
        assert result.exit_code not in (0, 70), result.stderr
        errors = [
            ln
            for ln in unstamped(result.stderr).splitlines()
            if ln.startswith("retailpulse: error:")
        ]
        assert len(errors) == 1 and "20990101-000000-abcdef" in errors[0], result.stderr
        assert result.stdout == ""


# -- imaging on real Pillow bytes (no server) --------------------------------------------------


@pytest.mark.parametrize("ext", list(FORMATS))
@pytest.mark.parametrize(("w", "h"), [(1, 1), (17, 900), (1024, 768)])
def test_measure_real_bytes(ext: str, w: int, h: int) -> None:
    size = measure(image_bytes(w, h, ext), max_pixels=100_000_000)
    assert (size.width, size.height, size.format) == (w, h, FORMATS[ext])
    assert size.perimeter == 2 * (w + h)


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "gif", "bmp", "tiff", "avif"])
def test_truncation_on_half_a_file(ext: str) -> None:
    data = image_bytes(640, 480, ext)
    fmt = FORMATS[ext]
    assert truncation(data, fmt) is None
    cut = data[: len(data) // 2]
    if ext != "tiff":  # TIFF is checked from its strip tags, inside measure()
        assert truncation(cut, fmt)
    with pytest.raises(ImageFailure) as info:
        measure(cut, max_pixels=100_000_000)
    assert info.value.code == "truncated_image"


@pytest.mark.parametrize(
    ("ext", "code"),
    [
        ("jpg", "truncated_image"),
        ("webp", "truncated_image"),
        ("bmp", "truncated_image"),
        ("png", None),
        ("gif", None),
    ],
)
def test_one_byte_short(ext: str, code: str | None) -> None:
    """The last byte is JPEG's FFD9, counted by the RIFF header (WebP), or pixel data (a
    640-pixel 24-bit BMP has no row padding): cut. Pillow never reads the CRC of PNG's IEND
    chunk, and stops quietly at the end of a GIF without its 0x3B trailer: it decodes them
    fully, so they are not failed (tests/test_completeness.py compares every case)."""
    data = image_bytes(640, 480, ext)[:-1]
    if code is None:
        assert measure(data, max_pixels=100_000_000).perimeter == 2240
        return
    with pytest.raises(ImageFailure) as info:
        measure(data, max_pixels=100_000_000)
    assert info.value.code == code


def test_jpeg_with_trailing_padding_is_not_truncated() -> None:
    data = image_bytes(64, 64, "jpg") + b"\x00" * 512
    assert measure(data, max_pixels=10_000).perimeter == 256


@pytest.mark.parametrize(
    "data", [b"", b"<html><body>not an image</body></html>", b"GIF89a", b"\x89PNG\r\n\x1a\n"]
)
def test_not_an_image_bytes(data: bytes) -> None:
    with pytest.raises(ImageFailure) as info:
        measure(data, max_pixels=100_000_000)
    assert info.value.code in ("not_an_image", "truncated_image")
    if not data or data.startswith(b"<html>"):
        assert info.value.code == "not_an_image"


def test_pixel_limit() -> None:
    buf = io.BytesIO()
    Image.new("1", (3000, 2000)).save(buf, "PNG")
    with pytest.raises(ImageFailure) as info:
        measure(buf.getvalue(), max_pixels=5_999_999)
    assert info.value.code == "decompression_bomb"
    assert measure(buf.getvalue(), max_pixels=6_000_000).perimeter == 10_000


@pytest.mark.parametrize("size", [(1, 1), (37, 23), (640, 480), (16383, 2)])
@pytest.mark.parametrize("kind", ["lossy", "lossless", "alpha", "animated"])
def test_webp_size_from_its_own_header_matches_pillow(size: tuple[int, int], kind: str) -> None:
    """The WebP fast path (VP8 / VP8L / VP8X headers) agrees with Pillow on every variant."""
    from PIL import Image

    from retailpulse_cli.processing.imaging import webp_size

    mode = "RGBA" if kind in ("alpha", "animated") else "RGB"
    frames = [Image.new(mode, size, (i * 60, 20, 30, 200)[: len(mode)]) for i in range(2)]
    buf = io.BytesIO()
    if kind == "animated":
        frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:])
    else:
        frames[0].save(buf, "WEBP", lossless=kind == "lossless")
    data = buf.getvalue()
    assert webp_size(data) == Image.open(io.BytesIO(data)).size == size
    assert measure(data, max_pixels=10**9) == (size[0], size[1], "WEBP")
