"""The dataset layer against the real files in $VLAE_BENCH_DATA, plus small files made in tmp_path.

Expected values are independent published facts (checksums, sizes, class counts from the data's
SOURCE.md or from the original distributions), never values computed by the code under test.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.datasets import (
    DatasetError,
    NamedImage,
    data_root_candidates,
    dataset_names,
    dataset_status,
    fetch,
    is_image_dataset,
    load_array,
    load_images,
    load_labels,
    read_image,
)
from benchmarks.datasets.idx import parse_idx, read_idx_gz
from benchmarks.datasets.mnist import read_amat
from benchmarks.errors import BenchError

KODAK_NAMES = [f"kodim{i:02d}" for i in range(1, 25)]
KODAK_PORTRAIT = {"kodim04", "kodim09", "kodim10", "kodim17", "kodim18", "kodim19"}
KODIM01_SHA256 = "a56e27cbf5f843c048b6af1d6e090760e9c92fadba88b7dee0205918a37523bd"
# Published facts about MNIST (class counts of the original label files) and the .amat md5.
MNIST_TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
BINARIZED_TEST_AMAT_MD5 = "14e41ae11040adba6ab8cb291eda0dd8"
MNIST_TORCHVISION_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's cache or the network unless a test asks for it."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VLAE_BENCH_CACHE", str(cache))
    monkeypatch.setenv("VLAE_BENCH_OFFLINE", "1")
    return cache


def link_folder(src: Path, dst: Path, names: list[str] | None = None) -> Path:
    """dst populated with symlinks to (some of) the files of src."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if names is None or path.name in names:
            (dst / path.name).symlink_to(path)
    return dst


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(array: np.ndarray, path: Path, mode: str | None = None, **kwargs) -> Path:
    Image.fromarray(array, mode).save(path, **kwargs)
    return path


# --- Kodak


def published_pixel_hashes(kodak_dir: Path) -> dict[str, str]:
    """name -> sha256 of decoded pixels, from the 'decoded RGB' column of kodak/SOURCE.md."""
    source = kodak_dir / "SOURCE.md"
    if not source.is_file():
        pytest.skip(f"{source} is missing")
    rows = re.findall(
        r"^\| (kodim\d\d)\.png \|(?:[^|]*\|){4} ([0-9a-f]{64}) \|", source.read_text(), re.M
    )
    assert len(rows) == 24
    return dict(rows)


def test_kodak_loads_24_rgb_images_with_published_pixels(kodak_dir: Path, data_root: Path) -> None:
    images = load_images("kodak", data_dir=data_root)
    expected = published_pixel_hashes(kodak_dir)
    assert [image.name for image in images] == KODAK_NAMES
    for image in images:
        pixels = image.pixels
        assert pixels.dtype == np.uint8 and pixels.flags.c_contiguous
        assert pixels.shape == ((768, 512, 3) if image.name in KODAK_PORTRAIT else (512, 768, 3))
        assert sha256(pixels.tobytes()) == expected[image.name], image.name


def test_kodak_limit_needs_only_the_first_files(
    kodak_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("VLAE_BENCH_DATA", raising=False)
    link_folder(kodak_dir, tmp_path / "root" / "kodak", ["kodim01.png", "kodim02.png"])
    images = load_images("kodak", data_dir=tmp_path / "root", limit=2)
    assert [image.name for image in images] == ["kodim01", "kodim02"]
    with pytest.raises(DatasetError, match="kodim03.png"):
        load_images("kodak", data_dir=tmp_path / "root", limit=3)


def test_wrong_kodak_file_is_refused(kodak_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "swapped" / "kodak"
    folder.mkdir(parents=True)
    shutil.copy(kodak_dir / "kodim02.png", folder / "kodim01.png")
    with pytest.raises(DatasetError, match=r"kodim01\.png.*a56e27cbf5f8") as info:
        load_images("kodak", data_dir=tmp_path / "swapped", limit=1)
    assert "checksum" in str(info.value) and "\n" not in str(info.value)

    data = bytearray((kodak_dir / "kodim01.png").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "kodim01.png").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"checksum mismatch for .*kodim01\.png"):
        load_images("kodak", data_dir=tmp_path / "swapped", limit=1)


def test_checksums_are_hashed_once_per_file(kodak_dir: Path, monkeypatch) -> None:
    path = kodak_dir / "kodim01.png"
    spec = fetch.FileSpec("kodim01.png", f"sha256:{KODIM01_SHA256}")
    fetch.verify_file(path, spec)
    calls = []
    real_new = hashlib.new
    monkeypatch.setattr(fetch.hashlib, "new", lambda *a: calls.append(a) or real_new(*a))
    fetch.verify_file(path, spec)
    assert calls == []


# --- Lookup order


def test_lookup_order_data_dir_then_env_then_cache(
    kodak_dir: Path, tmp_path: Path, monkeypatch, isolated_cache: Path
) -> None:
    arg_root, env_root = tmp_path / "arg", tmp_path / "env"
    for root in (arg_root, env_root, isolated_cache):
        link_folder(kodak_dir, root / "kodak")
    monkeypatch.setenv("VLAE_BENCH_DATA", str(env_root))

    assert data_root_candidates(arg_root) == [
        ("--data-dir", arg_root),
        ("VLAE_BENCH_DATA", env_root),
        ("cache", isolated_cache),
    ]

    def kodak_source(data_dir: Path | None) -> tuple[str, str]:
        row = dataset_status(data_dir, verify=False).set_index("name").loc["kodak"]
        return row["source"], row["location"]

    assert kodak_source(arg_root) == ("--data-dir", str(arg_root / "kodak"))
    assert kodak_source(None) == ("VLAE_BENCH_DATA", str(env_root / "kodak"))
    monkeypatch.delenv("VLAE_BENCH_DATA")
    assert kodak_source(None) == ("cache", str(isolated_cache / "kodak"))

    # The loader really reads from the winning root: a bad file in a losing root is never seen.
    monkeypatch.setenv("VLAE_BENCH_DATA", str(env_root))
    (env_root / "kodak" / "kodim01.png").unlink()
    shutil.copy(kodak_dir / "kodim02.png", env_root / "kodak" / "kodim01.png")
    assert load_images("kodak", data_dir=arg_root, limit=1)[0].name == "kodim01"
    with pytest.raises(DatasetError, match=re.escape(str(env_root))):
        load_images("kodak", limit=1)
    monkeypatch.delenv("VLAE_BENCH_DATA")
    assert load_images("kodak", limit=1)[0].name == "kodim01"


def test_missing_data_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        load_images("kodak", data_dir=tmp_path / "typo")


def test_an_explicit_data_dir_is_used_alone(tmp_path: Path, monkeypatch, kodak_dir) -> None:
    """--data-dir is a promise: a dataset missing there is an error, even where
    $VLAE_BENCH_DATA holds it (it was once read from there, silently)."""
    monkeypatch.setenv("VLAE_BENCH_DATA", str(kodak_dir.parent))
    (tmp_path / "empty" / "kodak").mkdir(parents=True)
    with pytest.raises(DatasetError) as info:
        load_images("kodak", data_dir=tmp_path / "empty")
    message = str(info.value)
    assert f"--data-dir={tmp_path / 'empty'}" in message and "VLAE_BENCH_DATA=" not in message
    assert "leave --data-dir out" in message and "kodim01.png..kodim24.png" in message
    assert len(load_images("kodak", limit=1)) == 1  # without it, the environment's copy


def test_offline_and_nowhere_names_the_needed_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("VLAE_BENCH_DATA", raising=False)
    monkeypatch.setenv("VLAE_BENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetError) as info:
        load_images("kodak")
    message = str(info.value)
    assert "kodim01.png..kodim24.png" in message and "kodak/" in message
    assert str(tmp_path / "cache") in message and "VLAE_BENCH_OFFLINE" in message
    assert "http://r0k.us/graphics/kodak/" in message and "\n" not in message

    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz.*mnist/"):
        load_array("mnist", "test")
    with pytest.raises(DatasetError, match=r"binarized_mnist_valid\.amat.*\.mat files"):
        load_array("binarized-mnist", "valid")


# --- Downloads (pooch replaced by a local copy: there is no network here)


def fake_retrieve(mnist_dir: Path, calls: list[str], failing: tuple[str, ...] = ()):
    def retrieve(url: str, known_hash: str, fname: str, path: Path, **kwargs) -> str:
        calls.append(url)
        if url.startswith(failing):
            raise ConnectionError(f"cannot reach {url}")  # what requests raises: an OSError
        assert known_hash == f"md5:{MNIST_TORCHVISION_MD5[fname]}"
        Path(path).mkdir(parents=True, exist_ok=True)
        shutil.copy(mnist_dir / fname, Path(path) / fname)
        return str(Path(path) / fname)

    return retrieve


def test_download_fills_the_cache_and_tries_mirrors(
    mnist_dir: Path, isolated_cache: Path, monkeypatch
) -> None:
    import pooch

    monkeypatch.delenv("VLAE_BENCH_DATA", raising=False)
    monkeypatch.delenv("VLAE_BENCH_OFFLINE")
    calls: list[str] = []
    ossci = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve(mnist_dir, calls, failing=(ossci,)))
    labels = load_labels("mnist", "test")
    assert np.bincount(labels).tolist() == MNIST_TEST_CLASS_COUNTS
    assert calls == [
        ossci + "t10k-labels-idx1-ubyte.gz",
        "https://storage.googleapis.com/cvdf-datasets/mnist/t10k-labels-idx1-ubyte.gz",
    ]
    assert (isolated_cache / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()
    calls.clear()
    load_labels("mnist", "test")  # now served from the cache
    assert calls == []


def test_failed_download_is_a_one_line_error(mnist_dir: Path, monkeypatch) -> None:
    import pooch

    monkeypatch.delenv("VLAE_BENCH_DATA", raising=False)
    monkeypatch.delenv("VLAE_BENCH_OFFLINE")
    calls: list[str] = []
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve(mnist_dir, calls, failing=("http",)))
    with pytest.raises(DatasetError) as info:
        load_array("mnist", "test")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "downloading failed" in message
    assert len(calls) == 2 and "\n" not in message


# --- MNIST-style arrays


def test_mnist_idx_files(mnist_dir: Path, data_root: Path) -> None:
    full = load_array("mnist", "trainval", data_dir=data_root)
    assert full.shape == (60000, 28, 28) and full.dtype == np.uint8
    assert full.min() == 0 and full.max() == 255
    train, valid = load_array("mnist", "train", data_root), load_array("mnist", "valid", data_root)
    assert train.shape == (50000, 28, 28) and valid.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.concatenate([train, valid]), full)
    assert load_array("mnist", "test", data_root).shape == (10000, 28, 28)

    train_labels = load_labels("mnist", "trainval", data_root)
    test_labels = load_labels("mnist", "test", data_root)
    assert np.bincount(train_labels, minlength=10).tolist() == MNIST_TRAIN_CLASS_COUNTS
    assert np.bincount(test_labels, minlength=10).tolist() == MNIST_TEST_CLASS_COUNTS
    assert load_labels("mnist", "valid", data_root).shape == (10000,)


def test_idx_parser_rejects_bad_magic_and_truncation(mnist_dir: Path, tmp_path: Path) -> None:
    raw = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert parse_idx(raw, 1).shape == (10000,)
    with pytest.raises(DatasetError, match="magic number 2049, expected 2051"):
        parse_idx(raw, 3)
    with pytest.raises(DatasetError, match="truncated"):
        parse_idx(raw[:-1], 1)
    with pytest.raises(DatasetError, match="truncated"):
        parse_idx(raw[:6], 1)
    cut = tmp_path / "cut.gz"
    cut.write_bytes((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()[:2000])
    with pytest.raises(DatasetError, match="cut.gz"):
        read_idx_gz(cut, 1)


def test_static_binarized_mnist_from_mat(binarized_mnist_dir: Path, data_root: Path) -> None:
    sizes = {"train": 50000, "valid": 10000, "test": 10000}
    arrays = {split: load_array("binarized-mnist", split, data_root) for split in sizes}
    for split, n in sizes.items():
        assert arrays[split].shape == (n, 28, 28) and arrays[split].dtype == np.uint8
        assert set(np.unique(arrays[split])) == {0, 1}
        assert load_labels("binarized-mnist", split, data_root) is None
    trainval = load_array("binarized-mnist", "trainval", data_root)
    np.testing.assert_array_equal(trainval, np.concatenate([arrays["train"], arrays["valid"]]))


def amat_text(rows: np.ndarray, newline: str = "\n") -> bytes:
    lines = (" ".join(map(str, row)) for row in rows.reshape(len(rows), -1).tolist())
    return (newline.join(lines) + newline).encode()


def test_binarized_mnist_amat_files(binarized_mnist_dir: Path, data_root: Path, tmp_path) -> None:
    test = load_array("binarized-mnist", "test", data_root)
    text = amat_text(test)
    # The .mat arrays written as Larochelle's text format give back the original file.
    assert hashlib.md5(text).hexdigest() == BINARIZED_TEST_AMAT_MD5

    folder = tmp_path / "root" / "binarized_mnist"
    folder.mkdir(parents=True)
    (folder / "binarized_mnist_test.amat").write_bytes(text)
    from_amat = load_array("binarized-mnist", "test", data_dir=tmp_path / "root")
    np.testing.assert_array_equal(from_amat, test)

    small = tmp_path / "small.amat"
    for newline in ("\n", "\r\n"):
        small.write_bytes(amat_text(test[:7], newline))
        np.testing.assert_array_equal(read_amat(small).reshape(-1, 28, 28), test[:7])
    small.write_bytes(amat_text(test[:2]).replace(b"1", b"2", 1))
    with pytest.raises(DatasetError, match="small.amat"):
        read_amat(small)
    (folder / "binarized_mnist_test.amat").write_bytes(amat_text(test[:7]))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_array("binarized-mnist", "test", data_dir=tmp_path / "root")


def test_dynamic_binarization_is_seeded_bernoulli(mnist_dir: Path, data_root: Path) -> None:
    pixels = load_array("mnist", "test", data_root)
    first = load_array("dynamic-binarized-mnist", "test", data_root, seed=3)
    np.testing.assert_array_equal(
        first, load_array("dynamic-binarized-mnist", "test", data_root, 3)
    )
    other = load_array("dynamic-binarized-mnist", "test", data_root, seed=4)
    assert first.shape == (10000, 28, 28) and first.dtype == np.uint8
    assert not np.array_equal(first, other)
    assert set(np.unique(first)) == {0, 1}
    assert not first[pixels == 0].any() and first[pixels == 255].all()
    # Equal in mean to pixel / 255, overall and within intensity bands.
    p = pixels / 255.0
    assert abs(first.mean() - p.mean()) < 1e-3
    for low, high in [(1, 64), (64, 128), (128, 192), (192, 255)]:
        band = (pixels >= low) & (pixels < high)
        assert abs(first[band].mean() - p[band].mean()) < 5e-3, (low, high)
    assert np.array_equal(
        load_labels("dynamic-binarized-mnist", "test", data_root),
        load_labels("mnist", "test", data_root),
    )


def test_dynamic_binarization_splits_agree(mnist_dir: Path, data_root: Path) -> None:
    full = load_array("dynamic-binarized-mnist", "trainval", data_root, seed=0)
    valid = load_array("dynamic-binarized-mnist", "valid", data_root, seed=0)
    np.testing.assert_array_equal(full[50000:], valid)


# --- read_image policy and folder:PATH


def png16_rgb(path: Path, height: int = 4, width: int = 5) -> Path:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    data = (np.arange(height * width * 3, dtype=">u2") * 1000).reshape(height, width, 3)
    raw = b"".join(b"\x00" + row.tobytes() for row in data)

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body)
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(
        signature
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)


def test_read_image_accepts_rgb_gray_palette_and_opaque_alpha(tmp_path: Path, rgb) -> None:
    np.testing.assert_array_equal(read_image(save(rgb, tmp_path / "rgb.png")), rgb)
    np.testing.assert_array_equal(read_image(save(rgb, tmp_path / "rgb.ppm")), rgb)

    gray = rgb[..., 0]
    out = read_image(save(gray, tmp_path / "gray.png"))
    assert out.shape == (6, 5, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)

    opaque = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(read_image(save(opaque, tmp_path / "opaque.png")), rgb)
    gray_alpha = np.dstack([gray, np.full(gray.shape, 255, np.uint8)])
    np.testing.assert_array_equal(
        read_image(save(gray_alpha, tmp_path / "la.png", "LA"))[..., 1], gray
    )

    palette = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    palette.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90])
    palette.save(tmp_path / "palette.png")
    expected = np.array([[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [40, 50, 60]]], np.uint8)
    np.testing.assert_array_equal(read_image(tmp_path / "palette.png"), expected)


def test_read_image_refuses_transparency_16_bit_and_other_modes(tmp_path: Path, rgb) -> None:
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[0, 0] = 0
    with pytest.raises(DatasetError, match="transparency; flatten it first"):
        read_image(save(np.dstack([rgb, alpha]), tmp_path / "rgba.png"))
    keyed = Image.fromarray(rgb[..., 0])
    keyed.save(tmp_path / "keyed.png", transparency=int(rgb[0, 0, 0]))
    with pytest.raises(DatasetError, match="transparency"):
        read_image(tmp_path / "keyed.png")

    with pytest.raises(DatasetError, match="16-bit PNG"):
        read_image(png16_rgb(tmp_path / "rgb16.png"))
    with pytest.raises(DatasetError, match="16-bit"):
        read_image(save(rgb[..., 0].astype(np.uint16) * 257, tmp_path / "gray16.png"))
    ppm = tmp_path / "maxval100.ppm"
    ppm.write_bytes(b"P6\n5 6\n100\n" + (rgb % 101).tobytes())
    with pytest.raises(DatasetError, match="maxval 100"):
        read_image(ppm)
    Image.new("CMYK", (4, 4)).save(tmp_path / "cmyk.jpg")
    with pytest.raises(DatasetError, match="mode CMYK"):
        read_image(tmp_path / "cmyk.jpg")
    with pytest.raises(DatasetError, match="does not exist"):
        read_image(tmp_path / "nothing.png")


def test_folder_dataset(kodak_dir: Path, tmp_path: Path, rgb) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    save(rgb, folder / "b.PNG")
    save(rgb, folder / "a.jpg", quality=95)
    save(rgb, folder / "a.tif")
    (folder / "notes.txt").write_text("not an image")
    images = load_images(f"folder:{folder}")
    assert [image.name for image in images] == ["a.jpg", "a.tif", "b"]
    assert all(isinstance(image, NamedImage) for image in images)
    np.testing.assert_array_equal(images[2].pixels, rgb)
    assert [image.name for image in load_images(f"folder:{folder}", limit=1)] == ["a.jpg"]

    data = (kodak_dir / "kodim01.png").read_bytes()
    (folder / "c_truncated.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"c_truncated\.png"):
        load_images(f"folder:{folder}")


def test_empty_or_missing_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="has no"):
        load_images(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DatasetError, match="does not exist"):
        load_images(f"folder:{tmp_path / 'absent'}")


# --- embedded, registry, status


def test_embedded_photos_load_offline(monkeypatch) -> None:
    monkeypatch.delenv("VLAE_BENCH_DATA", raising=False)
    images = load_images("embedded")
    names = [image.name for image in images]
    assert names == sorted(names) and len(names) == 7
    assert {"astronaut", "coffee", "chelsea", "rocket", "china", "flower"} <= set(names)
    for image in images:
        assert image.pixels.dtype == np.uint8 and image.pixels.ndim == 3
        assert image.pixels.shape[2] == 3 and image.pixels.flags.c_contiguous
    assert images[names.index("astronaut")].pixels.shape == (512, 512, 3)
    assert len(load_images("embedded", limit=2)) == 2


def test_registry_and_bad_requests() -> None:
    assert set(dataset_names()) == {
        "kodak", "embedded", "mnist", "fashion-mnist", "binarized-mnist", "dynamic-binarized-mnist",
    }  # fmt: skip
    assert is_image_dataset("kodak") and is_image_dataset("folder:/x")
    assert not is_image_dataset("mnist")
    assert issubclass(DatasetError, BenchError)
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'.*kodak"):
        load_images("cifar")
    with pytest.raises(DatasetError, match="load_images"):
        load_array("kodak", "test")
    with pytest.raises(DatasetError, match="load_array"):
        load_images("mnist")
    with pytest.raises(DatasetError, match="no split 'validation'"):
        load_array("mnist", "validation")
    with pytest.raises(DatasetError, match="limit"):
        load_images("embedded", limit=0)


def test_status_table(data_root: Path, kodak_dir: Path, tmp_path: Path, monkeypatch) -> None:
    table = dataset_status().set_index("name")
    assert list(table.columns) == ["kind", "source", "location", "files", "verified", "detail"]
    assert set(table.index) == set(dataset_names())
    kodak = table.loc["kodak"]
    assert (kodak["kind"], kodak["source"], kodak["files"]) == (
        "images",
        "VLAE_BENCH_DATA",
        "24/24",
    )
    assert kodak["verified"] is True and kodak["location"] == str(data_root / "kodak")
    fashion = table.loc["fashion-mnist"]
    assert (fashion["source"], fashion["location"], fashion["verified"]) == ("missing", "-", None)
    assert fashion["files"] == "0/4"
    assert table.loc["embedded", "source"] == "embedded"

    # A partial or corrupt copy given with --data-dir shows up as such.
    link_folder(kodak_dir, tmp_path / "partial" / "kodak", ["kodim01.png", "kodim02.png"])
    partial = dataset_status(tmp_path / "partial").set_index("name").loc["kodak"]
    assert partial["source"] == "VLAE_BENCH_DATA"  # the complete root still wins
    monkeypatch.delenv("VLAE_BENCH_DATA")
    partial = dataset_status(tmp_path / "partial").set_index("name").loc["kodak"]
    assert (partial["source"], partial["files"]) == ("missing", "2/24")
    assert "kodim03.png" in partial["detail"]

    link_folder(kodak_dir, tmp_path / "bad" / "kodak", [f"{n}.png" for n in KODAK_NAMES[1:]])
    shutil.copy(kodak_dir / "kodim02.png", tmp_path / "bad" / "kodak" / "kodim01.png")
    bad = dataset_status(tmp_path / "bad").set_index("name").loc["kodak"]
    assert bad["verified"] is False and "kodim01.png" in bad["detail"]
    assert (
        dataset_status(tmp_path / "bad", verify=False).set_index("name").loc["kodak", "verified"]
        is None
    )
