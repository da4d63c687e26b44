"""Regenerate examples/images/ (the example jobs' offline images) with Pillow."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent / "images"

SHELVES = {
    "shelf-640x480.jpg": ((640, 480), "JPEG"),
    "shelf-1600x1200.jpg": ((1600, 1200), "JPEG"),
    "aisle-800x600.png": ((800, 600), "PNG"),
    "endcap-1024x768.webp": ((1024, 768), "WEBP"),
    "promo-320x240.gif": ((320, 240), "GIF"),
    "fridge-120x200.bmp": ((120, 200), "BMP"),
}


def shelf(size: tuple[int, int]) -> Image.Image:
    """A cartoon shelf: coloured boxes on planks, so the images look like something."""
    w, h = size
    im = Image.new("RGB", size, (235, 230, 220))
    draw = ImageDraw.Draw(im)
    rows = 4
    for r in range(rows):
        y = (r + 1) * h // (rows + 1)
        draw.rectangle([0, y, w, y + max(2, h // 60)], fill=(120, 80, 40))
        for i in range(8):
            x0 = i * w // 8 + 4
            colour = ((37 * (i + r * 3)) % 255, (91 * i) % 255, (53 * r + 80) % 255)
            draw.rectangle([x0, y - h // 7, x0 + w // 10, y - 1], fill=colour)
    return im


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, (size, fmt) in SHELVES.items():
        shelf(size).save(HERE / name, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    good = (HERE / "shelf-640x480.jpg").read_bytes()
    (HERE / "broken-truncated.jpg").write_bytes(good[: len(good) // 2])  # cut off mid-scan
    print(f"wrote {len(SHELVES) + 1} images to {HERE}")


if __name__ == "__main__":
    main()
