"""The benchmark's images, made with Pillow at start."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from typing import Any

from benchutil import DEFAULT_MIX, JPEG_TARGET_BYTES

# -- images ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """One image the server holds: its HTTP response is built once, sent from memory."""

    path: str
    content_type: str
    body: bytes
    width: int
    height: int

    def response(self) -> bytes:
        head = (
            "HTTP/1.1 200 OK\r\n"
            f"Content-Type: {self.content_type}\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            "Connection: keep-alive\r\n\r\n"
        )
        return head.encode() + self.body


def _shelf_photo(size: tuple[int, int], seed: int, noise: Any) -> Any:
    """A photo-like shelf: gradient, products on planks, sensor noise, a little blur, so that
    JPEG sizes are those of real photos rather than of flat cartoons."""
    from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

    w, h = size
    rng = random.Random(seed)
    gradient = Image.linear_gradient("L").resize((w, h))
    dark = (rng.randrange(30, 110),) * 3
    light = (rng.randrange(180, 250), rng.randrange(170, 240), rng.randrange(150, 230))
    im = ImageOps.colorize(gradient, dark, light)
    draw = ImageDraw.Draw(im)
    rows = rng.randint(4, 6)
    for r in range(rows):
        y = (r + 1) * h // (rows + 1)
        draw.rectangle([0, y, w, y + max(2, h // 60)], fill=(110, 80, 50))
        x = rng.randrange(0, 20)
        while x < w:
            bw_min, bh_min = max(2, w // 40), max(2, h // 14)
            bw = rng.randrange(bw_min, max(bw_min + 1, w // 12))
            bh = rng.randrange(bh_min, max(bh_min + 1, h // (rows + 1) - 4))
            colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            draw.rectangle([x, y - bh, x + bw, y - 1], fill=colour, outline=(20, 20, 20))
            label = (255 - colour[0], 255 - colour[1], 255 - colour[2])
            draw.rectangle([x + bw // 5, y - bh * 2 // 3, x + bw * 4 // 5, y - bh // 3], fill=label)
            x += bw + rng.randrange(1, 8)
    im = ImageChops.add(im, noise, scale=1.0, offset=-128)
    return im.filter(ImageFilter.GaussianBlur(0.6))


def _noise(size: tuple[int, int], sigma: float) -> Any:
    from PIL import Image, ImageFilter

    channels = [
        Image.effect_noise(size, sigma).filter(ImageFilter.GaussianBlur(0.8)) for _ in range(3)
    ]
    return Image.merge("RGB", channels)


def _encode(im: Any, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def _jpeg_near(im: Any, target: int) -> bytes:
    """The JPEG quality whose size is closest to `target` bytes (bisection)."""
    lo, hi = 20, 95
    best = _encode(im, "JPEG", quality=75)
    while lo <= hi:
        q = (lo + hi) // 2
        data = _encode(im, "JPEG", quality=q)
        if abs(len(data) - target) < abs(len(best) - target):
            best = data
        if len(data) < target:
            lo = q + 1
        else:
            hi = q - 1
    return best


@dataclass
class ImageSet:
    photos: dict[str, list[Blob]]  # "jpeg"/"png"/"webp" -> variants
    tiny: list[Blob]
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))

    def all(self) -> list[Blob]:
        return [b for blobs in self.photos.values() for b in blobs] + self.tiny


def make_images(variants: int) -> ImageSet:
    """Real image bytes made with Pillow: ~1600x1200 JPEG of ~300 KB (the bulk), 640x480 PNG,
    1600x1200 WebP, and 64x48 PNG for the memory-scaling runs."""
    big, small = (1600, 1200), (640, 480)
    big_noise, small_noise = _noise(big, 40), _noise(small, 40)
    photos: dict[str, list[Blob]] = {"jpeg": [], "png": [], "webp": []}
    for i in range(variants):
        im = _shelf_photo(big, 1000 + i, big_noise)
        photos["jpeg"].append(
            Blob(f"/img/{i}.jpg", "image/jpeg", _jpeg_near(im, JPEG_TARGET_BYTES), *big)
        )
    for i in range(max(1, variants // 3)):
        im = _shelf_photo(small, 2000 + i, small_noise)
        photos["png"].append(Blob(f"/img/{i}.png", "image/png", _encode(im, "PNG"), *small))
        im = _shelf_photo(big, 3000 + i, big_noise)
        webp = _encode(im, "WEBP", quality=70, method=2)
        photos["webp"].append(Blob(f"/img/{i}.webp", "image/webp", webp, *big))
    tiny_noise = _noise((64, 48), 30)
    tiny = [
        Blob(
            f"/tiny/{i}.png",
            "image/png",
            _encode(_shelf_photo((64, 48), 4000 + i, tiny_noise), "PNG"),
            64,
            48,
        )
        for i in range(4)
    ]
    return ImageSet(photos, tiny)
