"""Image bytes -> (width, height). Pure: reads only the header, plus cheap end-of-file checks."""

from __future__ import annotations

import io
import struct
import warnings
from typing import NamedTuple

from PIL import Image, UnidentifiedImageError

# Pillow's own bomb guard warns at MAX_IMAGE_PIXELS and raises at twice that; we apply our
# own limit (settings.max_pixels) so the threshold is the user's, and silence the warning.
Image.MAX_IMAGE_PIXELS = None
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

try:  # HEIC/HEIF (and AVIF on older Pillow) when the optional plugin is installed
    import pillow_heif  # type: ignore[import-not-found]

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - optional
    pass


class ImageFailure(Exception):
    """An image that cannot be measured; `code` is a stable machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Size(NamedTuple):
    width: int
    height: int
    format: str

    @property
    def perimeter(self) -> int:
        return 2 * (self.width + self.height)


def measure(data: bytes, *, max_pixels: int) -> Size:
    """Width and height as stored in the file (EXIF orientation is not applied)."""
    if not data:
        raise ImageFailure("not_an_image", "empty body")
    webp = webp_size(data)
    if webp is not None:
        (width, height), fmt, declared_end = webp, "WEBP", 0
    else:
        width, height, fmt, declared_end = _pillow_size(data)
    if width <= 0 or height <= 0:
        raise ImageFailure("not_an_image", f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageFailure(
            "decompression_bomb",
            f"{width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}",
        )
    problem = truncation(data, fmt)
    if not problem and declared_end > len(data):
        problem = f"is {len(data):,} bytes but its strips end at byte {declared_end:,}"
    if problem:
        raise ImageFailure("truncated_image", f"{fmt} {problem}")
    return Size(width, height, fmt)


def _pillow_size(data: bytes) -> tuple[int, int, str, int]:
    """(width, height, format, end of TIFF data) from Pillow, which parses only headers."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            fmt = im.format or "unknown"
            declared_end = _tiff_data_end(im) if fmt == "TIFF" else 0
    except UnidentifiedImageError:
        if data[4:8] == b"ftyp" and _isobmff_end(data) > len(data):
            # libavif/libheif refuse a cut-off file outright; say what is really wrong
            raise ImageFailure("truncated_image", "AVIF/HEIF file is cut off") from None
        raise ImageFailure("not_an_image", "not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise ImageFailure("decompression_bomb", str(exc)) from None
    except OSError as exc:
        if exc.errno is not None:  # the system failed (e.g. too many open files), not the image
            raise
        raise ImageFailure("truncated_image", f"unreadable image header: {exc}") from None
    except (SyntaxError, ValueError, struct.error) as exc:
        raise ImageFailure("truncated_image", f"unreadable image header: {exc}") from None
    return width, height, fmt, declared_end


def webp_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a WebP's own header (VP8, VP8L or VP8X chunk), or None.

    Pillow's WebP opener builds a whole decoder while holding the GIL: with many threads
    that cost a quarter of all the time (see bench/README.md). The header says the same."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


_TAIL = 4096  # end markers are searched in the last few KB: some encoders append padding


def truncation(data: bytes, fmt: str) -> str | None:
    """Say why a file looks cut off, or None. Cheap: looks at the end of the file only."""
    tail_start = max(0, len(data) - _TAIL)
    if fmt in ("JPEG", "MPO"):
        if data.rfind(b"\xff\xd9", tail_start) == -1:
            return "has no end-of-image marker (FFD9): the file is cut off"
    elif fmt == "PNG":
        iend = data.rfind(b"IEND", tail_start)
        if iend == -1 or len(data) < iend + 8:  # the chunk type, then its 4-byte CRC
            return "has no complete IEND chunk: the file is cut off"
    elif fmt == "WEBP":
        declared = struct.unpack_from("<I", data, 4)[0] + 8
        if len(data) < declared:
            return f"is {len(data):,} bytes but its RIFF header declares {declared:,}"
    elif fmt == "GIF":
        if data.rstrip(b"\x00")[-1:] != b";":
            return "has no trailer byte (0x3B): the file is cut off"
    elif fmt in ("AVIF", "HEIF"):
        end = _isobmff_end(data)
        if end > len(data):
            return f"is {len(data):,} bytes but its boxes declare {end:,}"
    elif fmt == "BMP":
        declared = struct.unpack_from("<I", data, 2)[0]
        if declared and len(data) < declared:
            return f"is {len(data):,} bytes but its header declares {declared:,}"
    return None


def _tiff_data_end(im: Image.Image) -> int:
    """Where a TIFF's last strip or tile ends, from its offset and byte-count tags."""
    tags = getattr(im, "tag_v2", None)
    if tags is None:
        return 0
    offsets = tags.get(273) or tags.get(324)  # StripOffsets / TileOffsets
    counts = tags.get(279) or tags.get(325)  # StripByteCounts / TileByteCounts
    if not offsets or not counts:
        return 0
    if isinstance(offsets, int):
        offsets, counts = (offsets,), (counts,)
    return max((int(o) + int(c) for o, c in zip(offsets, counts, strict=False)), default=0)


def _isobmff_end(data: bytes) -> int:
    """Walk the top-level boxes of an AVIF/HEIF file; return where the last one ends."""
    pos = 0
    while pos + 8 <= len(data):
        size = struct.unpack_from(">I", data, pos)[0]
        if size == 1 and pos + 16 <= len(data):  # 64-bit "largesize"
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:  # the box runs to the end of the file
            return len(data)
        if size < 8:
            return pos  # malformed: let Pillow's own parsing speak for it
        pos += size
    return pos
