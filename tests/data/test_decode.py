"""decode.py: every PIL mode to the requested channels, exact crops, bad files with reasons."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnetlab.data import decode
from resnetlab.data.bundle import BadFile
from resnetlab.errors import UserError


def _write(path: Path, img: Image.Image, **save: object) -> Path:
    img.save(path, **save)
    return path


def _palette(transparent: bool) -> Image.Image:
    img = Image.new("P", (10, 8))
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    img.paste(1, (0, 0, 5, 8))   # left half: index 1 (red)
    img.paste(2, (5, 0, 10, 8))  # right half: index 2 (blue)
    if transparent:
        img.info["transparency"] = 1
    return img


MODES = {
    "L": lambda: Image.new("L", (12, 10), 90),
    "RGB": lambda: Image.new("RGB", (12, 10), (10, 200, 30)),
    "RGBA": lambda: Image.new("RGBA", (12, 10), (10, 200, 30, 255)),
    "LA": lambda: Image.new("LA", (12, 10), (90, 255)),
    "P": lambda: _palette(False),
    "P+transparency": lambda: _palette(True),
    "I;16": lambda: Image.fromarray(np.full((10, 12), 40000, np.uint16)),
    "1": lambda: Image.new("1", (12, 10), 1),
}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_gives_uint8_with_requested_channels(tmp_path: Path, mode: str, channels: int) -> None:
    path = _write(tmp_path / "x.png", MODES[mode]())
    out = decode.decode_image(path, image_size=8, channels=channels)
    assert isinstance(out, np.ndarray), out
    assert out.shape == (channels, 8, 8) and out.dtype == np.uint8


def test_cmyk_jpeg_decodes_to_rgb(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)))  # pure red ink
    out = decode.decode_image(path, image_size=8, channels=3)
    r, g, b = out.reshape(3, -1).mean(axis=1)
    assert r > 200 and g < 60 and b < 60


def test_alpha_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255               # red everywhere underneath
    rgba[:, :4, 3] = 0               # left: fully transparent
    rgba[:, 4:, 3] = 255             # right: opaque
    path = _write(tmp_path / "a.png", Image.fromarray(rgba, "RGBA"))
    out = decode.decode_image(path, image_size=8, channels=3)
    assert (out[:, :, :4] == 0).all()
    assert (out[0, :, 4:] == 255).all() and (out[1:, :, 4:] == 0).all()


def test_palette_transparency_is_black(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.png", _palette(True))
    out = decode.decode_image(path, image_size=8, channels=3)
    # The 10x8 image is cropped to its central 8x8: columns 1-3 transparent red, 5-7 blue.
    assert (out[:, :, :3] == 0).all()
    assert (out[2, :, 5:] == 255).all() and (out[:2, :, 5:] == 0).all()


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.zeros((8, 8), np.uint16)
    values[:, :4] = 65535
    values[:, 4:] = 32896  # 128 * 257
    path = _write(tmp_path / "g16.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I")
    out = decode.decode_image(path, image_size=8, channels=1)
    assert (out[0, :, :4] == 255).all() and (out[0, :, 4:] == 128).all()


def test_shorter_side_resized_then_center_cropped(tmp_path: Path) -> None:
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :8] = (255, 0, 0)
    wide[:, 8:32] = (0, 255, 0)
    wide[:, 32:] = (0, 0, 255)
    out = decode.decode_image(_write(tmp_path / "w.png", Image.fromarray(wide)), image_size=10, channels=3)
    assert out.shape == (3, 10, 10)
    assert (out[1] == 255).all() and (out[0] == 0).all() and (out[2] == 0).all()
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    out = decode.decode_image(_write(tmp_path / "t.png", Image.fromarray(tall)), image_size=10, channels=3)
    assert (out[1] == 255).all()


def test_large_jpeg_uses_draft_and_keeps_content(tmp_path: Path) -> None:
    img = Image.new("RGB", (320, 240), (0, 0, 255))
    path = _write(tmp_path / "big.jpg", img, quality=95)
    with Image.open(path) as probe:
        probe.draft("RGB", (16, 16))
        assert probe.size[0] < 320  # the decoder really reduces: the speed-up is in effect
    out = decode.decode_image(path, image_size=16, channels=3)
    assert out.shape == (3, 16, 16) and out[2].min() > 230 and out[:2].max() < 25


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:, :8] = 255  # left half white
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 3  # rotated 180 degrees
    path = _write(tmp_path / "r.jpg", img, exif=exif, quality=95)
    out = decode.decode_image(path, image_size=16, channels=1)
    assert out[0, :, 12:].mean() > 200 and out[0, :, :4].mean() < 50


def test_bad_files_have_readable_reasons(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.jpg", Image.new("RGB", (64, 64), (1, 2, 3)), quality=90)
    data = good.read_bytes()
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "header.jpg").write_bytes(data[:20])
    (tmp_path / "notes.png").write_text("just some text, not pixels\n")
    reasons = {name: decode.decode_image(tmp_path / name, image_size=8, channels=3)
               for name in ("zero.png", "cut.jpg", "header.jpg", "notes.png", "gone.png")}
    assert all(isinstance(r, BadFile) for r in reasons.values())
    assert reasons["zero.png"].reason == "zero-byte file"
    assert reasons["cut.jpg"].reason == "truncated image"
    assert reasons["header.jpg"].reason.startswith("corrupt image")
    assert reasons["notes.png"].reason == "not an image"
    assert reasons["gone.png"].reason == "missing file"
    assert reasons["cut.jpg"].path == str(tmp_path / "cut.jpg")


def test_permission_denied_is_a_bad_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "x.png", Image.new("L", (8, 8)))

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(decode.Image, "open", refuse)
    out = decode.decode_image(path, image_size=8, channels=1)
    assert out == BadFile(str(path), "unreadable: permission denied")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file_on_disk(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.png", Image.new("L", (8, 8)))
    path.chmod(0)
    out = decode.decode_image(path, image_size=8, channels=1)
    assert out == BadFile(str(path), "unreadable: permission denied")


def test_decompression_bomb_is_a_bad_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "x.png", Image.new("L", (40, 40)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 > 2 * 100: Pillow refuses
    out = decode.decode_image(path, image_size=8, channels=1)
    assert isinstance(out, BadFile) and "decompression-bomb" in out.reason


def test_decode_many_fills_rows_and_stops_on_first_bad_in_order(tmp_path: Path, log,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    paths = []
    for i in range(70):
        paths.append(str(_write(tmp_path / f"{i}.png", Image.new("L", (8, 8), i))))
    (tmp_path / "bad1.png").write_bytes(b"")
    (tmp_path / "bad2.png").write_bytes(b"")
    paths[40] = str(tmp_path / "bad1.png")
    paths[65] = str(tmp_path / "bad2.png")
    out = np.zeros((70, 1, 8, 8), np.uint8)
    monkeypatch.setattr(decode, "_PROGRESS_SECONDS", 0.0)
    bad = decode.decode_many(paths, out, image_size=8, channels=1, workers=2, log=log)
    assert sorted(bad) == [40, 65]
    assert log.lines[0].startswith("decoding: 32/70 images (46%,")
    assert [int(out[i, 0, 0, 0]) for i in (0, 1, 39, 69)] == [0, 1, 39, 69]
    with pytest.raises(UserError, match=r"bad1\.png: zero-byte file.*data\.on_bad_file=skip"):
        decode.decode_many(paths, out, image_size=8, channels=1, workers=2, stop_on_bad=True)


def test_probe_channels(tmp_path: Path) -> None:
    grey = [str(_write(tmp_path / f"g{i}.png", Image.new("L", (8, 8), i))) for i in range(3)]
    grey_palette = Image.new("P", (8, 8))
    grey_palette.putpalette([v for i in range(256) for v in (i, i, i)])
    grey.append(str(_write(tmp_path / "gp.png", grey_palette)))
    assert decode.probe_channels(grey) == 1
    colour = str(_write(tmp_path / "c.png", Image.new("RGB", (8, 8), (1, 2, 3))))
    assert decode.probe_channels([*grey, colour]) == 3


def test_convert_many_matches_file_decoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (5, 3, 12, 12), dtype=np.uint8)
    out = np.zeros((3, 1, 8, 8), np.uint8)
    rows = np.array([4, 0, 2])
    decode.convert_many(src, rows, out, image_size=8, channels=1, workers=1)
    for i, r in enumerate(rows):
        path = _write(tmp_path / f"{r}.png", Image.fromarray(src[r].transpose(1, 2, 0)))
        assert np.array_equal(out[i], decode.decode_image(path, image_size=8, channels=1))
    same = np.zeros((3, 3, 12, 12), np.uint8)
    decode.convert_many(src, rows, same, image_size=12, channels=3)
    assert np.array_equal(same, src[rows])
