"""Reader for the IDX format of MNIST (and of Fashion-/K-MNIST), plain or gzip-ed.

An IDX file is a 4-byte magic number ``00 00 TT DD`` (``TT`` the element type,
``DD`` the number of dimensions), ``DD`` big-endian uint32 sizes, then the
elements in C order, big-endian. See http://yann.lecun.com/exdb/mnist/.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

from dfl.data.dataset import Dataset

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX element-type code -> NumPy dtype (big-endian)."""

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""The four standard MNIST file names (each may also end in ``.gz``)."""


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads one IDX file; a name ending in ``.gz`` is decompressed on the fly.

    Args:
      path: file to read.

    Returns:
      The array, with the dimensions and (native-endian) element type of the header.

    Raises:
      ValueError: the header is not an IDX header, or the data size does not match it.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except gzip.BadGzipFile as e:
        raise ValueError(f"{path}: not a valid gzip file ({e})") from e
    if len(raw) < 4:
        raise ValueError(f"{path}: expected a 4-byte IDX magic number, found only {len(raw)} bytes")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or code not in IDX_DTYPES:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x0000TTDD with type "
            f"TT in {{{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}}}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: header declares {ndim} dimensions ({header} header bytes) but the file "
            f"has {len(raw)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header shape {shape} of {dtype.name} needs {expected} data bytes, "
            f"found {len(raw) - header}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(directory: str, base: str) -> str:
    candidates = [os.path.join(directory, base), os.path.join(directory, base + ".gz")]
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(
        f"MNIST file not found: expected {candidates[0]} or {candidates[1]} (set data.path to "
        "the folder holding the four standard MNIST IDX files)"
    )


def _check(path: str, arr: np.ndarray, ndim: int, what: str) -> None:
    if arr.dtype != np.uint8 or arr.ndim != ndim:
        raise ValueError(
            f"{path}: expected {what} (uint8, {ndim} dimensions), found {arr.dtype.name} "
            f"with shape {arr.shape}"
        )


def load_mnist(
    *, seed: int, test_fraction: float = 0.2, path: str | os.PathLike[str] | None = None
) -> Dataset:
    """Loads MNIST from the four standard IDX files in ``path``, scaled to ``[0, 1]``.

    The official 60,000/10,000 train/test split is kept, so ``seed`` and
    ``test_fraction`` are ignored. Any image size is accepted as long as train
    and test agree (Fashion-MNIST and K-MNIST files load too).

    Args:
      seed: unused (the split is fixed).
      test_fraction: unused (the split is fixed).
      path: folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally ``.gz``.

    Returns:
      A :class:`Dataset` with features ``(rows, cols, 1)`` (``(28, 28, 1)`` for
      MNIST) in ``[0, 1]`` and 10 classes.
    """
    del seed, test_fraction
    if path is None:
        raise ValueError(
            "dataset 'mnist' needs path=<folder with the MNIST IDX files> (data.path); "
            "it is never downloaded"
        )
    directory = os.fspath(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"MNIST path {directory!r} is not a directory")
    arrays = {}
    for key, base in MNIST_FILES.items():
        f = _find(directory, base)
        arr = read_idx(f)
        if key.endswith("images"):
            _check(f, arr, 3, "images")
        else:
            _check(f, arr, 1, "labels")
            if arr.size and arr.max() >= 10:
                raise ValueError(f"{f}: expected labels in [0, 10), found max {arr.max()}")
        arrays[key] = (f, arr)
    for split in ("train", "test"):
        (fi, xi), (fl, yl) = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if xi.shape[0] != yl.shape[0]:
            raise ValueError(f"{fi} holds {xi.shape[0]} images but {fl} holds {yl.shape[0]} labels")
    (f_tr, x_tr), (f_te, x_te) = arrays["train_images"], arrays["test_images"]
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise ValueError(
            f"image sizes differ: {f_tr} has {x_tr.shape[1:]}, {f_te} has {x_te.shape[1:]}"
        )
    return Dataset(
        x_train=(x_tr.astype(np.float32) / 255.0)[..., None],
        y_train=arrays["train_labels"][1].astype(np.int32),
        x_test=(x_te.astype(np.float32) / 255.0)[..., None],
        y_test=arrays["test_labels"][1].astype(np.int32),
        num_classes=10,
        name="mnist",
    )
