"""Issue 9.3: the cheap completeness check agrees with a full Pillow decode.

Never fail a file that Pillow decodes fully (motion photos append a video after the JPEG's
end, BMP headers carry a wrong file size, TIFF byte counts are overstated), and still catch
a file whose image data is cut. Every source below is real bytes (Pillow-made, or written
by hand where Pillow cannot write the variant), judged with trailers and cut at several
points, against Pillow opening, seeking to every frame and loading it."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFile, TiffImagePlugin, features

from retailpulse_cli.processing.imaging import ImageFailure, measure

from .conftest import KNOWN, Cli, results_of, visit, write_job
from .imageserver import ImageServer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on cut TIFF/EXIF data

W, H = 101, 67  # odd sizes: BMP rows get padding, JPEG gets partial MCUs


def photo(size: tuple[int, int] = (W, H), mode: str = "RGB") -> Image.Image:
    """Noise over a gradient: entropy-coded data full of FF00 stuffing, like a photo."""
    noise = Image.frombytes("L", size, random.Random(size[0]).randbytes(size[0] * size[1]))
    grad = Image.linear_gradient("L").resize(size)
    im = Image.merge("RGB", (noise, grad, Image.eval(noise, lambda v: 255 - v)))
    return im.convert(mode)


def saved(im: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def exif(orientation: int, description: bytes) -> bytes:
    tags = Image.Exif()
    tags[0x0112], tags[0x010E] = orientation, description
    return tags.tobytes()


def frames(n: int, mode: str = "RGB") -> list[Image.Image]:
    return [photo(mode=mode).rotate(30 * i) for i in range(n)]


# -- files Pillow cannot write: made by hand -----------------------------------------------------


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def interlaced_png() -> bytes:
    """An Adam7-interlaced 8-bit RGB PNG (Pillow reads these but writes none)."""
    pix = photo().tobytes()
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2)]
    raw = bytearray()
    for x0, y0, dx, dy in [*passes, (0, 1, 1, 2)]:
        for y in range(y0, H, dy):
            raw.append(0)  # filter type None
            for x in range(x0, W, dx):
                raw += pix[(y * W + x) * 3 : (y * W + x) * 3 + 3]
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 1)
    idat = zlib.compress(bytes(raw))
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        png_chunk(k, v)
        for k, v in [(b"IHDR", ihdr), (b"IDAT", idat[:500]), (b"IDAT", idat[500:]), (b"IEND", b"")]
    )


def png_text_after_idat() -> bytes:
    """A tEXt chunk between the image data and IEND, as some cameras write."""
    data = saved(photo(), "PNG")
    return data[:-12] + png_chunk(b"tEXt", b"Comment\x00" + b"x" * 300) + data[-12:]


def bmp(bits: int, rows: bytes, palette: bytes, compression: int = 0, height: int = H) -> bytes:
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, W, height, 1, bits, compression, len(rows), 0, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + palette + rows


def bmp4() -> bytes:
    """A 4-bit palette BMP (Pillow reads these but writes none)."""
    stride = (W * 4 + 31) // 32 * 4
    row = bytes((i * 17) & 0xFF for i in range((W + 1) // 2)).ljust(stride, b"\0")
    palette = b"".join(bytes((i * 16, 255 - i * 16, i * 8, 0)) for i in range(16))
    return bmp(4, row * H, palette)


def bmp_rle8() -> bytes:
    """An RLE8-compressed BMP: runs of (count, index), 00 00 ends a row, 00 01 the bitmap."""
    row = b"".join(bytes((min(30, W - x), x % 256)) for x in range(0, W, 30)) + b"\0\0"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    return bmp(8, row * (H - 1) + row[:-2] + b"\0\x01", palette, compression=1)


def with_bmp_size_field(data: bytes, value: int) -> bytes:
    return data[:2] + struct.pack("<I", value) + data[6:]


def tiled_tiff(tile: int = 32) -> bytes:
    """An uncompressed tiled little-endian TIFF (Pillow reads these but writes none)."""
    across, down = -(-W // tile), -(-H // tile)
    pix, tile_bytes = photo(), tile * tile * 3
    tiles = [
        pix.crop((x * tile, y * tile, x * tile + tile, y * tile + tile)).tobytes()
        for y in range(down)
        for x in range(across)
    ]
    n = len(tiles)
    ifd_at = 8 + n * tile_bytes
    extra = ifd_at + 2 + 11 * 12 + 4  # after the IFD: bits per sample, offsets, counts
    entries = [
        (256, 3, 1, W),
        (257, 3, 1, H),
        (258, 3, 3, extra),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (277, 3, 1, 3),
        (284, 3, 1, 1),
        (322, 3, 1, tile),
        (323, 3, 1, tile),
        (324, 4, n, extra + 6),
        (325, 4, n, extra + 6 + 4 * n),
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", t, k, c) + struct.pack("<HH" if k == 3 else "<I", v, 0)[:4]
        if k == 3
        else struct.pack("<HHII", t, k, c, v)
        for t, k, c, v in entries
    )
    offsets = struct.pack(f"<{n}I", *(8 + i * tile_bytes for i in range(n)))
    counts = struct.pack(f"<{n}I", *([tile_bytes] * n))
    return (
        b"II*\0"
        + struct.pack("<I", ifd_at)
        + b"".join(tiles)
        + ifd
        + b"\0\0\0\0"
        + struct.pack("<3H", 8, 8, 8)
        + offsets
        + counts
    )


def libtiff_strips(compression: str = "raw", rows: int = 16) -> bytes:
    TiffImagePlugin.WRITE_LIBTIFF = True
    try:
        return saved(photo(), "TIFF", compression=compression, tiffinfo={278: rows})
    finally:
        TiffImagePlugin.WRITE_LIBTIFF = False


def tiff_last_count(data: bytes, delta: int) -> bytes:
    """The same TIFF with its last strip's (or tile's) byte count changed by `delta`."""
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack_from(order + "I", data, 4)[0]
    for i in range(struct.unpack_from(order + "H", data, ifd)[0]):
        at = ifd + 2 + 12 * i
        tag, kind, count, value = struct.unpack_from(order + "HHII", data, at)
        if tag in (279, 325):
            size = 4 if kind == 4 else 2
            where = at + 8 if count * size <= 4 else value
            where += (count - 1) * size
            fmt = order + ("I" if kind == 4 else "H")
            old = struct.unpack_from(fmt, data, where)[0]
            return data[:where] + struct.pack(fmt, old + delta) + data[where + size :]
    raise AssertionError("no byte-count tag")


# -- the sources -------------------------------------------------------------------------------

SOURCES: dict[str, Callable[[], bytes]] = {
    "jpeg": lambda: saved(photo(), "JPEG", quality=90),
    "jpeg-progressive": lambda: saved(photo(), "JPEG", progressive=True),
    # EXIF whose text holds FFD9: the APP1 segment is skipped by its length
    "jpeg-exif": lambda: saved(photo(), "JPEG", exif=exif(orientation=6, description=b"\xff\xd9")),
    "jpeg-restart-markers": lambda: saved(photo(), "JPEG", restart_marker_blocks=1),
    "jpeg-grey": lambda: saved(photo(mode="L"), "JPEG"),
    # a comment holding a whole JPEG (a thumbnail): its FFD9 is skipped by the segment length
    "jpeg-thumbnail-in-comment": lambda: saved(
        photo(), "JPEG", comment=saved(photo((16, 16)), "JPEG")
    ),
    "mpo": lambda: saved(photo(), "MPO", save_all=True, append_images=frames(2)[1:]),
    "png": lambda: saved(photo(), "PNG"),
    "png-palette": lambda: saved(photo(mode="P"), "PNG"),
    "png-rgba": lambda: saved(photo(mode="RGBA"), "PNG"),
    "png-interlaced": interlaced_png,
    "png-text-after-idat": png_text_after_idat,
    "gif": lambda: saved(photo(mode="P"), "GIF"),
    "gif-animated": lambda: saved(
        photo(mode="P"), "GIF", save_all=True, append_images=frames(3, "P")[1:], duration=50
    ),
    "webp-lossy": lambda: saved(photo(), "WEBP"),
    "webp-lossless": lambda: saved(photo(), "WEBP", lossless=True),
    "webp-animated": lambda: saved(photo(), "WEBP", save_all=True, append_images=frames(3)[1:]),
    "bmp-1bit": lambda: saved(photo(mode="1"), "BMP"),
    "bmp-4bit": bmp4,
    "bmp-8bit": lambda: saved(photo(mode="L"), "BMP"),
    "bmp-24bit": lambda: saved(photo(), "BMP"),
    "bmp-24bit-width-4": lambda: saved(photo((100, 20)), "BMP"),  # rows without padding
    "bmp-32bit": lambda: saved(photo(mode="RGBA"), "BMP"),
    "bmp-rle8": bmp_rle8,
    "bmp-size-field-huge": lambda: with_bmp_size_field(saved(photo(), "BMP"), 0x7FFFFFFF),
    "bmp-size-field-small": lambda: with_bmp_size_field(saved(photo(), "BMP"), 54),
    "tiff": lambda: saved(photo(), "TIFF"),
    "tiff-lzw": lambda: saved(photo(), "TIFF", compression="tiff_lzw"),
    "tiff-multi-strip": libtiff_strips,
    "tiff-deflate-multi-strip": lambda: libtiff_strips("tiff_adobe_deflate"),
    "tiff-tiled": tiled_tiff,
    "tiff-last-count-overstated": lambda: tiff_last_count(libtiff_strips(), 5000),
    "tiff-tiled-last-count-overstated": lambda: tiff_last_count(tiled_tiff(), 5000),
    "tiff-lzw-last-count-overstated": lambda: tiff_last_count(libtiff_strips("tiff_lzw"), 100),
    "tiff-lzw-last-count-understated": lambda: tiff_last_count(libtiff_strips("tiff_lzw"), -1),
    "tiff-raw-last-count-understated": lambda: tiff_last_count(libtiff_strips(), -500),
}
if features.check("avif"):
    SOURCES["avif"] = lambda: saved(photo(), "AVIF")


@cache
def source(name: str) -> bytes:
    return SOURCES[name]()


# Like the MP4 a motion photo appends; without FFD9 so that no end marker is found in it
TRAILER = random.Random(9).randbytes(2_000_000).replace(b"\xff\xd9", b"\xff\x00")

VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "whole": lambda d: d,
    "trailer-100B": lambda d: d + TRAILER[:100],
    "trailer-5KB": lambda d: d + TRAILER[:5000],
    "trailer-2MB": lambda d: d + TRAILER,
    "zero-padding-5KB": lambda d: d + bytes(5000),
    "cut-in-header": lambda d: d[:40],
    "cut-in-middle": lambda d: d[: len(d) // 2],
    "cut-at-90%": lambda d: d[: len(d) * 9 // 10],
    "1-byte-short": lambda d: d[:-1],
}


NO_DATA = "No data found for frame"  # Pillow's MPO reader: the index points past the end


def pillow_decodes(data: bytes) -> bool:
    """The oracle: Pillow opens the file and loads every frame, refusing truncated data. A
    frame Pillow finds no data for at all (an MPO index entry past the end of the file) is
    not there to decode: Pillow shows the others."""
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    try:
        with Image.open(io.BytesIO(data)) as im:
            for number in range(getattr(im, "n_frames", 1)):
                try:
                    im.seek(number)
                except ValueError as exc:
                    if str(exc) == NO_DATA:
                        continue
                    raise
                im.load()
    except (OSError, SyntaxError, ValueError, IndexError, struct.error, EOFError):
        return False
    return True


# Where the cheap check and Pillow cannot agree cheaply, what measure() says instead, and why.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # Pillow reads an RLE BMP until its end-of-bitmap code; its size cannot be known from the
    # header, so a cut RLE BMP is measured (its header is whole) although Pillow fails it.
    ("bmp-rle8", "cut-in-middle"): "ok",
    ("bmp-rle8", "cut-at-90%"): "ok",
    ("bmp-rle8", "1-byte-short"): "ok",
}


def verdict(data: bytes) -> str:
    try:
        size = measure(data, max_pixels=10**9)
    except ImageFailure as exc:
        return exc.code
    with Image.open(io.BytesIO(data)) as im:
        assert (size.width, size.height) == im.size
    return "ok"


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", list(SOURCES))
def test_measure_agrees_with_a_full_pillow_decode(name: str, variant: str) -> None:
    data = VARIANTS[variant](source(name))
    expected = "ok" if pillow_decodes(data) else "truncated_image"
    if variant == "whole" or variant.startswith(("trailer", "zero")):
        assert expected == "ok", "every source decodes, with or without trailing data"
    else:
        assert expected != "ok" or (name, variant) in EXCEPTIONS or variant == "1-byte-short"
    assert verdict(data) == EXCEPTIONS.get((name, variant), expected)


# -- the exceptions, each tested for what it is ----------------------------------------------


def test_a_jpeg_without_its_end_marker_is_cut_even_where_pillow_decodes_it() -> None:
    """Exception: libjpeg stops once it has decoded every block, so a JPEG that lost its
    FFD9 (or the last bits of its final block) sometimes decodes, depending on the data.
    Knowing that needs Huffman decoding; a JPEG is complete when FFD9 closes its data."""
    data = saved(photo((25, 40)), "JPEG")
    assert data.endswith(b"\xff\xd9") and b"\xff\xd9" not in data[:-2]
    for cut in (data[:-1], data[:-2]):
        assert pillow_decodes(cut)
        assert verdict(cut) == "truncated_image"
    assert verdict(data) == "ok"


def test_a_png_ending_right_after_its_image_data_is_cut() -> None:
    """Exception: a PNG that ends after an IDAT chunk, without IEND, decodes when the
    compressed stream happened to end there; but more IDAT may have been cut off, and only
    inflating the data could tell. A PNG whose image data is followed by another chunk (so
    the data is known to be whole) is complete without IEND, as Pillow decodes it."""
    data = source("png")
    no_iend = data[:-12]
    assert pillow_decodes(no_iend)
    assert verdict(no_iend) == "truncated_image"
    text_then_cut = source("png-text-after-idat")[:-12]  # tEXt after IDAT, then no IEND
    assert pillow_decodes(text_then_cut)
    assert verdict(text_then_cut) == "ok"


def test_a_cut_rle_bmp_is_measured() -> None:
    """Exception: an RLE-compressed BMP's size cannot be known from its header (Pillow reads
    it to its end-of-bitmap code), so a cut one passes; its header, hence its size, is whole."""
    data = source("bmp-rle8")[:-50]
    assert not pillow_decodes(data)
    assert verdict(data) == "ok"


def mpo_second_image_at() -> tuple[bytes, int, int]:
    """A two-image MPO as Pillow writes it, where its second image starts, and where the
    MP index keeps that image's offset (4 bytes, relative to the MPF header)."""
    data = source("mpo")
    with Image.open(io.BytesIO(data)) as im:
        entries = im.mpinfo[0xB002]
    base = data.find(b"MPF\x00") + 4
    start = base + entries[1]["DataOffset"]
    little = data[base : base + 2] == b"II"
    field = data.find(entries[1]["DataOffset"].to_bytes(4, "little" if little else "big"), base)
    assert data[start : start + 2] == b"\xff\xd8" and field > base
    return data, start, field


def test_an_mpo_whose_second_image_has_no_data_is_measured() -> None:
    """Issue 17, finding 9: sugarshack_no_data.mpo (Pillow's test file, its index hex-edited
    to put image 2 past the end) was `truncated_image` though Pillow decodes what is there.
    Both shapes: the index pointing past the end, and the file ending where image 1 ends."""
    data, start, field = mpo_second_image_at()
    past_the_end = bytearray(data)
    past_the_end[field + 2] = 0xFF  # as in sugarshack_no_data.mpo: one byte of the offset
    for shape in (bytes(past_the_end), data[:start]):
        with Image.open(io.BytesIO(shape)) as im:
            im.load()  # the first image, fully
            assert im.n_frames == 2
            with pytest.raises(ValueError, match=NO_DATA):
                im.seek(1)
        assert pillow_decodes(shape)
        assert verdict(shape) == "ok"
    # Any byte of image 2 there, and it must be whole: Pillow fails these.
    for cut in (data[: start + 3], data[: start + 40], data[:-1]):
        assert not pillow_decodes(cut)
        assert verdict(cut) == "truncated_image"


def test_tiff_data_past_the_end() -> None:
    """Uncompressed strips are read row by row (their byte counts are ignored, by Pillow
    too); compressed ones by libtiff, which needs every strip's whole declared count."""
    raw = tiff_last_count(libtiff_strips(), 60_000)  # count overstated, rows all present
    assert pillow_decodes(raw) and verdict(raw) == "ok"
    lzw = tiff_last_count(libtiff_strips("tiff_lzw"), 60_000)  # libtiff refuses this one
    assert not pillow_decodes(lzw) and verdict(lzw) == "truncated_image"


# -- end to end: a motion photo over real HTTP -------------------------------------------------


def test_a_motion_photo_is_measured_through_the_cli(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    url = server.url("/motion/640x480.jpg")  # a JPEG followed by 2 MB of video
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], url)])
    result = cli("submit", str(job), "--gpu-delay", "0", "--retries", "0")
    assert result.exit_code == 0, result.stderr
    (record,) = results_of(env, result.stdout.strip())
    assert record["status"] == "ok", record
    assert (record["width"], record["height"], record["perimeter"]) == (640, 480, 2240)
