"""Image bytes -> (width, height). Pure: reads only the header, plus cheap end-of-file checks."""

from __future__ import annotations

import io
import re
import struct
import warnings
from typing import NamedTuple

from PIL import Image, ImageFile, UnidentifiedImageError

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
        if _has_image_signature(data):
            raise ImageFailure(
                "truncated_image",
                "its header cannot be read although it starts like an image: "
                "the file is cut off or damaged",
            ) from None
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


_CUT = "is cut off"
# The first marker that ends a scan's entropy-coded data: FF followed by anything but 00
# (byte stuffing), D0-D7 (restart markers, which live inside the scan) or FF (fill bytes).
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])  # TEM, RSTn, SOI: markers without a length


def truncation(data: bytes, fmt: str) -> str | None:
    """Say why a file's image data is cut off, or None.

    The rule for every format: never fail a file that Pillow decodes fully (trailing data,
    such as the video a motion photo appends to its JPEG, is fine), still catch a file whose
    image data is cut. Cheap: segment, chunk and block lengths let us jump over the data."""
    if fmt == "JPEG":
        return _jpeg_problem(data)
    if fmt == "MPO":
        return _mpo_problem(data)
    if fmt == "PNG":
        return _png_problem(data)
    if fmt == "GIF":
        return _gif_problem(data)
    if fmt == "BMP":
        return _bmp_problem(data)
    if fmt == "WEBP":
        declared = struct.unpack_from("<I", data, 4)[0] + 8
        if len(data) < declared:
            return f"is {len(data):,} bytes but its RIFF header declares {declared:,}"
    elif fmt in ("AVIF", "HEIF"):
        end = _isobmff_end(data)
        if end > len(data):
            return f"is {len(data):,} bytes but its boxes declare {end:,}"
    return None


def _jpeg_problem(data: bytes, start: int = 0) -> str | None:
    """A JPEG (from `start`) is complete when its entropy-coded data is closed by EOI (FFD9).

    Segments are skipped by their length; each scan (a progressive JPEG has several, with
    DHT etc. between them) is searched in C for the first real marker. That search reads
    every byte (about 1 ms per MB), so it runs only when the file does not simply end in
    FFD9: those two bytes cannot occur inside entropy-coded data (an FF there is followed
    by 00 or a restart marker) nor in the DHT/SOS segments between scans, so a file cut
    inside its image data never ends with them once the segments before its first scan are
    whole. Trailing data (motion photos), padding and cut files take the full walk."""
    end, pos = len(data), start + 2
    while True:
        ff = data.find(b"\xff", pos)  # libjpeg, too, skips junk and fill bytes before a marker
        if ff < 0 or ff + 1 >= end:
            return f"{_CUT}: no end-of-image marker (FFD9)"
        marker = data[ff + 1]
        if marker == 0xD9:
            return None
        if marker == 0xFF or marker in _STANDALONE:
            pos = ff + 1 if marker == 0xFF else ff + 2
            continue
        pos = ff + 2 + int.from_bytes(data[ff + 2 : ff + 4], "big")
        if ff + 4 > end or pos > end:
            return f"{_CUT} inside a segment (marker FF{marker:02X})"
        if marker == 0xDA:  # start of scan: the entropy-coded data follows its header
            if data.endswith(b"\xff\xd9"):
                return None
            found = _SCAN_END.search(data, pos)
            if found is None:
                return f"{_CUT} inside the image data (no marker ends the scan)"
            pos = found.start()


def _mpo_problem(data: bytes) -> str | None:
    """An MPO (e.g. a stereo photo) is complete when each of its JPEG images that has any
    data is; the images are found as Pillow finds them, from the MP index in the first
    image's APP2 segment. An image whose index entry points at or past the end of the file
    has no data at all (Pillow: "No data found for frame"; a broken index, or a file that
    ends where an image ends): there is nothing of it to be cut, and Pillow decodes the
    rest, so it is not a problem (sugarshack_no_data.mpo in Pillow's own tests)."""
    problem = _jpeg_problem(data)
    if problem:
        return problem
    with Image.open(io.BytesIO(data)) as im:
        entries = getattr(im, "mpinfo", {}).get(0xB002, [])
    base = data.find(b"MPF\x00")
    for number, entry in enumerate(entries[1:], start=2):
        offset = base + 4 + int(entry["DataOffset"])
        if base < 0:
            return f"{_CUT}: image {number} of {len(entries)} is missing"
        if offset + 2 >= len(data):  # where Pillow reads the image's first marker: none
            continue
        problem = _jpeg_problem(data, offset)
        if problem:
            return f"image {number} of {len(entries)} {problem}"
    return None


def _png_problem(data: bytes) -> str | None:
    """Walk the chunks by their lengths, as Pillow reads them.

    Complete once the IEND chunk's header is reached (Pillow never reads its CRC), or once a
    non-IDAT chunk follows the image data (Pillow stops quietly where the file ends then, but
    fails on a chunk whose data is cut). A file ending right after an IDAT chunk is called
    cut: more IDAT may have followed, and only inflating the data could tell."""
    end, pos, seen_idat, after_idat = len(data), 8, False, False
    while pos + 8 <= end:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IEND":
            return None
        seen_idat = seen_idat or kind == b"IDAT"
        after_idat = after_idat or (seen_idat and kind != b"IDAT")
        if pos + 8 + length > end:
            return f"{_CUT} inside its {kind.decode('latin-1')} chunk"
        pos += 12 + length
    return None if after_idat else f"{_CUT}: no IEND chunk"


def _gif_problem(data: bytes) -> str | None:
    """Walk the blocks. Pillow stops quietly where the file ends between two blocks (even
    without the 0x3B trailer) but fails on a block that is cut, so only that is a problem."""
    end = len(data)
    if end < 13:
        return f"{_CUT} inside its header"
    pos = 13 + _gif_table_size(data[10])
    while pos < end:
        block = data[pos]
        if block == 0x3B:
            return None
        if block == 0x21:  # extension: introducer and label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image: descriptor, local colour table, LZW code size, sub-blocks
            if pos + 10 > end:
                return f"{_CUT} inside an image descriptor"
            pos += 10 + _gif_table_size(data[pos + 9]) + 1
        else:  # Pillow skips a stray byte between blocks
            pos += 1
            continue
        while pos < end and data[pos]:
            pos += 1 + data[pos]
        if pos >= end:
            return f"{_CUT} inside a block"
        pos += 1  # the zero-length sub-block that closes the block
    return None


def _gif_table_size(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _bmp_problem(data: bytes) -> str | None:
    """Judge a BMP by where its pixel rows end, not by the header's file-size field (often
    wrong in the wild; Pillow ignores it). Rows are padded to 4 bytes, but Pillow does not
    need the last row's padding. RLE/JPEG/PNG-compressed BMPs cannot be sized this way."""
    if len(data) < 30:
        return f"{_CUT} inside its header"
    offset, header = struct.unpack_from("<II", data, 10)
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit fields
        width, height, _, bits = struct.unpack_from("<HHHH", data, 18)
        compression = 0
    elif len(data) < 34:
        return f"{_CUT} inside its header"
    else:
        width, height, _, bits, compression = struct.unpack_from("<iiHHI", data, 18)
    if compression not in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS
        return None
    row = (abs(width) * bits + 7) // 8
    needed = offset + (row + 3) // 4 * 4 * (abs(height) - 1) + row
    if len(data) < needed:
        return f"is {len(data):,} bytes but its pixel rows end at byte {needed:,}"
    return None


def _has_image_signature(data: bytes) -> bool:
    """Whether the bytes start like one of our formats (so a header Pillow cannot read is a
    cut or damaged image, not some other kind of file)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff":
        return True
    if data[:4] in (b"GIF8", b"II*\x00", b"MM\x00*") or data[8:12] == b"WEBP":
        return True
    return data[:2] == b"BM" and data[6:10] == bytes(4)  # BMP's reserved fields are zero


def _tiff_data_end(im: ImageFile.ImageFile) -> int:
    """Where the data Pillow needs to decode a TIFF ends.

    Compressed strips and tiles are read by libtiff, which wants each one's whole byte count
    (it fails even when only the count is overstated). Uncompressed ones Pillow reads itself,
    row by row, ignoring the counts: it needs the rows only."""
    tags = getattr(im, "tag_v2", None)
    if tags is None:
        return 0
    if im.tile and all(tile.codec_name == "raw" for tile in im.tile):
        bits = tags.get(258) or (1,)
        bits_per_pixel = int(bits[0]) if tags.get(284) == 2 else sum(int(b) for b in bits)
        return max(_raw_tile_end(tile, bits_per_pixel) for tile in im.tile)
    offsets = tags.get(273) or tags.get(324)  # StripOffsets / TileOffsets
    counts = tags.get(279) or tags.get(325)  # StripByteCounts / TileByteCounts
    if not offsets or not counts:
        return 0
    if isinstance(offsets, int):
        offsets, counts = (offsets,), (counts,)
    return max((int(o) + int(c) for o, c in zip(offsets, counts, strict=False)), default=0)


def _raw_tile_end(tile: ImageFile._Tile, bits_per_pixel: int) -> int:
    """Where Pillow's raw decoder stops reading one strip or tile: rows of `stride` bytes,
    the last one without padding."""
    x0, y0, x1, y1 = tile.extents or (0, 0, 0, 0)
    line = ((x1 - x0) * bits_per_pixel + 7) // 8
    args = tile.args if isinstance(tile.args, tuple) else ()
    stride = int(args[1]) if len(args) > 1 and args[1] else line
    return tile.offset + stride * max(0, y1 - y0 - 1) + line


def _isobmff_end(data: bytes) -> int:
    """Walk the top-level boxes of an AVIF/HEIF file; return where the last one ends, or
    where both `meta` (what the images are) and `mdat` (their data) have ended: whatever
    follows them is not needed to decode the image."""
    pos, needed = 0, {b"meta", b"mdat"}
    while pos + 8 <= len(data) and needed:
        needed.discard(data[pos + 4 : pos + 8])
        size = struct.unpack_from(">I", data, pos)[0]
        if size == 1 and pos + 16 <= len(data):  # 64-bit "largesize"
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:  # the box runs to the end of the file
            return len(data)
        if size < 8:
            return pos  # malformed: let Pillow's own parsing speak for it
        pos += size
    if needed and pos < len(data):  # cut inside the header of the next box
        return pos + 8
    return pos
