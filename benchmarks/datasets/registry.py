"""Which datasets exist, which files each one needs, and the published checksums of those files.

This module is pure data: finding, verifying and downloading the files is `fetch.py`'s job,
decoding them is `images.py`'s and `mnist.py`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from benchmarks.datasets.errors import DatasetError

Kind = Literal["images", "arrays"]


@dataclass(frozen=True)
class FileSpec:
    """One acceptable form of a file: its name in the dataset folder and its pinned checksum."""

    name: str
    known_hash: str  # "sha256:<hex>" or "md5:<hex>", the format pooch uses
    urls: tuple[str, ...] = ()  # download mirrors, tried in order; empty: never downloaded


@dataclass(frozen=True)
class Resource:
    """One logical file of a dataset, e.g. the MNIST test images.

    `choices` lists the accepted forms, preferred first when several are present locally;
    the first one with URLs is the one downloaded.
    """

    key: str
    choices: tuple[FileSpec, ...]

    @property
    def download(self) -> FileSpec | None:
        return next((choice for choice in self.choices if choice.urls), None)

    @property
    def canonical_name(self) -> str:
        """The file name to ask users for: the downloadable form when there is one."""
        return (self.download or self.choices[0]).name


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: where its files live inside a data root and where they come from."""

    name: str
    kind: Kind
    folder: str | None  # subfolder of a data root; None for data shipped inside packages
    resources: tuple[Resource, ...]
    source_url: str  # where a user can get the files by hand
    note: str = ""  # extra hint for the "not found" message

    def resource(self, key: str) -> Resource:
        for resource in self.resources:
            if resource.key == key:
                return resource
        raise KeyError(f"{self.name} has no file {key!r}")

    @property
    def keys(self) -> list[str]:
        return [resource.key for resource in self.resources]


def _single(key: str, name: str, known_hash: str, urls: tuple[str, ...]) -> Resource:
    return Resource(key, (FileSpec(name, known_hash, urls),))


# --- Kodak: sha256 of each file as distributed by r0k.us (recorded in the data's SOURCE.md).
KODAK_URL = "http://r0k.us/graphics/kodak/"
_KODAK_SHA256 = {
    "kodim01": "a56e27cbf5f843c048b6af1d6e090760e9c92fadba88b7dee0205918a37523bd",
    "kodim02": "4f4b74a79237e311d72cad958237b5f7088d8bce1c82305ebefe1a70e3022dfd",
    "kodim03": "e25ca1ff2f0c0cb5fdfd5f9b0a0bb21ac4c3de3c84a67f35b09a85d3306249db",
    "kodim04": "e3b946107c5d3441c022f678d0c3caf1e224d81b1604ba840a4f88e562de61aa",
    "kodim05": "10349e963c5c813d327852f82c1795fa4148d69fedffc4c589bee458e3ac3d53",
    "kodim06": "363510303b715d4cbc384e1ce227e466b613a09e1b71ae985882bf8e7fbd9b18",
    "kodim07": "b77d3f006f42414bb242222e0482e750c0fb9e5ee8d4bed2f6f11c5605fe54a4",
    "kodim08": "ba23983c76b4832ee0e8af0592664756841a16779acd69f792e268fb6d13d6e7",
    "kodim09": "6a4361c2fc194feb4edaa9f9a4a0620fb9943e460ac7fdf037fb0f6dd6607a7d",
    "kodim10": "9dfb70f5867c29ff9ed6313683f19b3d867849e40fbc0c4c54a4a89df341cf23",
    "kodim11": "7936814b58b5387fce2e4e2488b4ec830dadd95fa9520f358ddb30990b50f2b6",
    "kodim12": "d78c37c2f04f23761ed2367dd77e2db584ddd4c3950833fecf89f199a8126980",
    "kodim13": "bc34a3ce58dea09dce1704c997171602de90cb34d0c8503a988b77f473d39b08",
    "kodim14": "55a94550ff18f3246c4074fd32b77b0c74447c26b6ad274d564d999c0450ba6e",
    "kodim15": "7538cbb80cb9103606c48b806eae57d56c885c7f90b9b3be70a41160f9cbb683",
    "kodim16": "a89c7268ccd4718ba424a99fc4643c572cf692ca6eae887185ceb4e9f11d2e54",
    "kodim17": "37afcc89fbdcb76d9518e04b2fc011027e2f4cd14b3b2f83cefd721641a47c5b",
    "kodim18": "1a9258c365988961d87a0598725b609139c303ad48a5aad6c503c3b1a87849aa",
    "kodim19": "b7450b264b1b0a411390d8931b112c27905a992520fc90569dc4b920aa32bbdc",
    "kodim20": "3b46c71e3b92a563820ba32936be8330c586c41f938efd94be938386aae4328a",
    "kodim21": "ac958597c82073f6bb65129c68f72b651db5b9efd82e11547d07350214bc268b",
    "kodim22": "1cee58eb1f2d9c7ebb254d208a03c783ce6cf2c4d8c2cf45e235dd23b4ce1b29",
    "kodim23": "e3111a2fd4da24af15d6459ef9eacfe54106b38e27b4a21821b75c3f5d2d5baf",
    "kodim24": "1071c68372cc5a01435c2c225a5cf7d4bb803846ec08bb6b3d6721b156d7cb96",
}

_KODAK = DatasetSpec(
    name="kodak",
    kind="images",
    folder="kodak",
    resources=tuple(
        _single(stem, f"{stem}.png", f"sha256:{digest}", (f"{KODAK_URL}kodak/{stem}.png",))
        for stem, digest in _KODAK_SHA256.items()
    ),
    source_url=KODAK_URL,
)

# --- MNIST and Fashion-MNIST: the md5s torchvision pins (MNIST/FashionMNIST.resources).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_MNIST_MD5 = {
    "train-images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_FASHION_MNIST_MD5 = {
    "train-images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels": "bb300cfdad3c16e7a12a480ee83cd310",
}


def _idx_resources(md5s: dict[str, str], mirrors: tuple[str, ...]) -> tuple[Resource, ...]:
    def resource(key: str, md5: str) -> Resource:
        name = f"{key}-idx{1 if key.endswith('labels') else 3}-ubyte.gz"
        return _single(key, name, f"md5:{md5}", tuple(mirror + name for mirror in mirrors))

    return tuple(resource(key, md5) for key, md5 in md5s.items())


_MNIST_RESOURCES = _idx_resources(_MNIST_MD5, MNIST_MIRRORS)
_MNIST = DatasetSpec("mnist", "arrays", "mnist", _MNIST_RESOURCES, MNIST_MIRRORS[0])
# Dynamic binarization samples from the MNIST files themselves, so it shares their folder.
_DYNAMIC = DatasetSpec(
    "dynamic-binarized-mnist", "arrays", "mnist", _MNIST_RESOURCES, MNIST_MIRRORS[0]
)
_FASHION = DatasetSpec(
    "fashion-mnist",
    "arrays",
    "fashion_mnist",
    _idx_resources(_FASHION_MNIST_MD5, (FASHION_MNIST_URL,)),
    FASHION_MNIST_URL,
)

# --- Statically binarized MNIST (Larochelle & Murray 2011).
# The original .amat text files (md5s pinned by public loaders), or the same arrays as MATLAB .mat
# files with variable X (sha256 recorded in the data's SOURCE.md). The .mat form is
# preferred when both are present because it loads much faster.
BINARIZED_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
_BINARIZED_AMAT_MD5 = {
    "train": "db28b1a6ae0fe70cbd3da91acf46e477",
    "valid": "bf37822a04e94123630de6a7dfd9c9ef",
    "test": "14e41ae11040adba6ab8cb291eda0dd8",
}
_BINARIZED_MAT_SHA256 = {
    "train": "79a0312c7389d855cfc97e3812de3998417c5829d8a51543b56a90a91252ae7e",
    "valid": "7436afc856959075c7787025bb8a4ba2b520b9230ee39667c66aa7dd2819dd68",
    "test": "5bc30222e1e7896cbccd1e1db6b28540cc1230f4d2d5473841a5f6cc54be8d38",
}
_BINARIZED = DatasetSpec(
    name="binarized-mnist",
    kind="arrays",
    folder="binarized_mnist",
    resources=tuple(
        Resource(
            split,
            (
                FileSpec(f"binarized_mnist_{split}.mat", f"sha256:{_BINARIZED_MAT_SHA256[split]}"),
                FileSpec(
                    f"binarized_mnist_{split}.amat",
                    f"md5:{_BINARIZED_AMAT_MD5[split]}",
                    (f"{BINARIZED_MNIST_URL}binarized_mnist_{split}.amat",),
                ),
            ),
        )
        for split in ("train", "valid", "test")
    ),
    source_url=BINARIZED_MNIST_URL,
    note=".mat files with variable X are accepted in place of .amat",
)

# --- Photos shipped inside the scikit-image and scikit-learn wheels: no files, no checksums.
_EMBEDDED = DatasetSpec(
    "embedded", "images", None, (), "https://scikit-image.org/docs/stable/api/skimage.data.html"
)

SPECS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (_KODAK, _EMBEDDED, _MNIST, _FASHION, _BINARIZED, _DYNAMIC)
}
FOLDER_PREFIX = "folder:"


def dataset_names() -> list[str]:
    """Names of the registered datasets (``folder:PATH`` is accepted too but not listed)."""
    return list(SPECS)


def is_image_dataset(name: str) -> bool:
    """True for RGB photo datasets (`load_images`), False for MNIST-style arrays (`load_array`)."""
    return name.startswith(FOLDER_PREFIX) or get_spec(name).kind == "images"


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for `name`; an unknown name raises DatasetError listing the known ones."""
    try:
        return SPECS[name]
    except KeyError:
        known = ", ".join([*SPECS, "folder:PATH"])
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {known}") from None
