"""RGB photo datasets (Kodak, a folder of files, the photos embedded in installed packages).

`read_image` is the single place where an image file becomes a uint8 H x W x 3 array. It keeps
the stored pixel values exactly: no gamma, ICC or EXIF-orientation handling. Its policy:

- 8-bit RGB is returned as is;
- 8-bit gray ("L") is replicated to three channels, palette ("P") images are expanded through
  their palette;
- an alpha channel (RGBA, LA, or a PNG transparency key) is dropped only if every pixel is
  opaque; images with real transparency are refused, since flattening needs a background choice;
- 16-bit images are refused, including 16-bit-per-channel RGB PNGs that Pillow would silently
  reduce to 8 bits (found through the PNG header), and PPMs whose maxval is not 255 (which
  Pillow rescales);
- every other mode (CMYK, float, 1-bit, ...) and multi-frame files are refused;
- a truncated or corrupt file raises DatasetError: the pixels are decoded eagerly with
  ``.load()``, and Pillow's global ``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay False.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.datasets.errors import DatasetError
from benchmarks.datasets.fetch import resolve_files
from benchmarks.datasets.registry import FOLDER_PREFIX, get_spec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
EMBEDDED_NAMES = (
    "astronaut",
    "chelsea",
    "china",
    "coffee",
    "flower",
    "immunohistochemistry",
    "rocket",
)
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_TIFF_BITS_PER_SAMPLE = 258


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make field-wise == meaningless
class NamedImage:
    """One item of a dataset: its name and its exact uint8 pixels.

    Pixels are H x W (gray, or binary with ``binary=True``: values 0 and 1) or H x W x C
    (C = 3 for photos). Every method and metric takes items of this one type; names are a
    file stem ("kodim01"), a split row ("test/00042") or a patch ("kodim01@64,128").
    """

    name: str
    pixels: np.ndarray
    binary: bool = False

    def __post_init__(self) -> None:
        pixels = self.pixels
        if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or min(pixels.shape) < 1:
            raise ValueError(
                f"{self.name}: pixels must be uint8 HxW or HxWxC, got {pixels.dtype} {pixels.shape}"
            )
        if self.binary and pixels.size and int(pixels.max()) > 1:
            raise ValueError(f"{self.name}: binary pixels must be 0 or 1")
        object.__setattr__(self, "pixels", np.ascontiguousarray(pixels))

    @property
    def channels(self) -> int:
        return 1 if self.pixels.ndim == 2 else self.pixels.shape[2]


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to a C-contiguous uint8 H x W x 3 array (policy: module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image {path} does not exist")
    try:
        with Image.open(path) as image:
            _refuse_high_bit_depth(image, path)
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                raise DatasetError(f"{path} has {frames} frames; only single images are supported")
            image.load()
            rgb = _to_rgb(image, path)
    except DatasetError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        message = " ".join(str(err).split())
        raise DatasetError(f"cannot decode {path}: {type(err).__name__}: {message}") from err
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _refuse_high_bit_depth(image: Image.Image, path: Path) -> None:
    """Refuse files whose samples are wider than 8 bits, even where Pillow would reduce them."""
    if image.format == "PNG":
        with path.open("rb") as f:
            header = f.read(25)  # signature (8), chunk length and type (8), width, height, depth
        if len(header) == 25 and header[12:16] == b"IHDR" and header[24] > 8:
            raise DatasetError(f"{path} is a {header[24]}-bit PNG; only 8-bit images are supported")
    elif image.format == "TIFF":
        bits = image.tag_v2.get(_TIFF_BITS_PER_SAMPLE, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        if max(bits) > 8:
            raise DatasetError(f"{path} is a {max(bits)}-bit TIFF; only 8-bit images are supported")
    elif image.format == "PPM" and image.tile:
        args = image.tile[0].args
        maxval = args[-1] if isinstance(args, tuple) else 255
        if isinstance(maxval, int) and maxval != 255:
            raise DatasetError(
                f"{path} has PPM maxval {maxval} (Pillow would rescale it); only 255 is supported"
            )


def _to_rgb(image: Image.Image, path: Path) -> Image.Image:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        raise DatasetError(f"{path} is 16-bit (mode {mode}); only 8-bit images are supported")
    # Palettes may carry alpha, and a transparency key marks a colour transparent: check alpha.
    if mode in {"P", "PA"} or (mode in {"L", "RGB"} and "transparency" in image.info):
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in {"RGBA", "LA"}:
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 255:
            transparent = int((alpha < 255).sum())
            raise DatasetError(
                f"{path} has transparency; flatten it first ({transparent} pixels with alpha < 255)"
            )
        return image.convert("RGB")  # drops the all-opaque alpha; LA's gray is replicated
    if mode == "L":
        return image.convert("RGB")  # gray replicated to three channels
    if mode == "RGB":
        return image
    raise DatasetError(
        f"{path} has unsupported mode {mode}; use 8-bit RGB, gray, palette or opaque RGBA"
    )


def load_images(
    name: str, data_dir: Path | None = None, limit: int | None = None
) -> list[NamedImage]:
    """The images of an image dataset, sorted by name; with `limit`, only the first N are read.

    `name` is "kodak", "embedded" or "folder:PATH" (every image file directly inside PATH).
    Kodak files are found through the lookup order of `fetch.py` and checked against their
    pinned sha256; folder images have no checksum.
    """
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be at least 1, got {limit}")
    if name.startswith(FOLDER_PREFIX):
        return _load_folder(Path(name[len(FOLDER_PREFIX) :]).expanduser(), limit)
    spec = get_spec(name)
    if spec.kind != "images":
        raise DatasetError(f"{name!r} is an array dataset: use load_array, not load_images")
    if name == "embedded":
        return [NamedImage(n, _embedded_pixels(n)) for n in EMBEDDED_NAMES[:limit]]
    keys = sorted(spec.keys)[:limit]
    paths = resolve_files(spec, keys, data_dir)
    return [NamedImage(key, read_image(paths[key])) for key in keys]


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside `folder` (by suffix, any case), sorted; hidden files skipped."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
        and not path.name.startswith(".")
    )


def _load_folder(folder: Path, limit: int | None) -> list[NamedImage]:
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist")
    files = image_files(folder)
    if not files:
        raise DatasetError(f"image folder {folder} has no {'/'.join(IMAGE_SUFFIXES)} files")
    # Name images by stem, unless two files share one (a.png and a.jpg): then by full file name.
    stems = Counter(path.stem for path in files)
    named = sorted((path.stem if stems[path.stem] == 1 else path.name, path) for path in files)
    return [NamedImage(name, read_image(path)) for name, path in named[:limit]]


def _embedded_pixels(name: str) -> np.ndarray:
    pixels = _embedded_loaders()[name]()
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise DatasetError(f"embedded image {name} is {pixels.dtype} {pixels.shape}, not uint8 RGB")
    return np.ascontiguousarray(pixels)


def _embedded_loaders() -> dict[str, Callable[[], np.ndarray]]:
    """Photos that ship inside the scikit-image and scikit-learn wheels: no network needed."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    loaders: dict[str, Callable[[], np.ndarray]] = {
        name: getattr(skimage.data, name)
        for name in ("astronaut", "chelsea", "coffee", "immunohistochemistry", "rocket")
    }
    loaders["china"] = lambda: load_sample_image("china.jpg")
    loaders["flower"] = lambda: load_sample_image("flower.jpg")
    return loaders
