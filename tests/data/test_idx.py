"""Tests of the IDX reader and the ``mnist`` loader on tiny files written here."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from dfl.data import load_dataset, read_idx
from dfl.data.idx import MNIST_FILES


def write_idx(path: Path, arr: np.ndarray, *, code: int = 0x08, magic: bytes | None = None) -> None:
    """Writes ``arr`` as IDX (big-endian), gzip-ed when the name ends in .gz."""
    dtypes = {0x08: ">u1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}
    head = magic if magic is not None else bytes([0, 0, code, arr.ndim])
    raw = head + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(dtypes[code]).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(raw)


def _mnist_dir(tmp_path: Path, *, gz: bool, n_train: int = 5, n_test: int = 3) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": np.array([9, 0, 3], dtype=np.uint8)[:n_test],
    }
    for key, base in MNIST_FILES.items():
        write_idx(tmp_path / (base + (".gz" if gz else "")), arrays[key])
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_plain_and_gz(tmp_path: Path, gz: bool) -> None:
    arrays = _mnist_dir(tmp_path, gz=gz)
    ds = load_dataset("mnist", seed=0, path=str(tmp_path))
    assert ds.x_train.shape == (5, 28, 28, 1) and ds.x_test.shape == (3, 28, 28, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    np.testing.assert_array_equal(ds.x_train[..., 0] * 255.0, arrays["train_images"])
    assert ds.x_test[0, 0, 0, 0] == np.float32(arrays["test_images"][0, 0, 0]) / np.float32(255)
    np.testing.assert_array_equal(ds.y_train, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(ds.y_test, [9, 0, 3])
    assert ds.num_classes == 10 and ds.name == "mnist"


def test_read_idx_other_types(tmp_path: Path) -> None:
    a = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    write_idx(tmp_path / "a", a, code=0x0C)
    out = read_idx(tmp_path / "a")
    np.testing.assert_array_equal(out, a)
    assert out.dtype == np.int32 and out.dtype.isnative
    f = np.array([0.5, -1.25], dtype=np.float32)
    write_idx(tmp_path / "f.gz", f, code=0x0D)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.gz"), f)


def test_bad_magic_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    write_idx(bad, np.zeros((2, 2), np.uint8), magic=b"\x08\x03\x00\x00")
    with pytest.raises(ValueError, match=r"bad.*bad IDX magic number 0x08030000"):
        read_idx(bad)
    write_idx(bad, np.zeros((2, 2), np.uint8), magic=b"\x00\x00\x42\x02")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    write_idx(bad, np.zeros((2, 2), np.uint8), magic=b"\x01\x00\x08\x02")
    with pytest.raises(ValueError, match="magic number 0x01000802"):
        read_idx(bad)


def test_truncated_and_short_files(tmp_path: Path) -> None:
    p = tmp_path / "t"
    write_idx(p, np.zeros((4, 3), np.uint8))
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"\(4, 3\) of uint8 needs 12 data bytes, found 11"):
        read_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="found only 2 bytes"):
        read_idx(p)


def test_mnist_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs path="):
        load_dataset("mnist", seed=0)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", seed=0, path=str(tmp_path))
    _mnist_dir(tmp_path, gz=False)
    # labels where images belong: wrong number of dimensions
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: expected images"):
        load_dataset("mnist", seed=0, path=str(tmp_path))
    _mnist_dir(tmp_path, gz=False, n_test=2)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], np.uint8))
    with pytest.raises(ValueError, match=r"holds 2 images but .* holds 3 labels"):
        load_dataset("mnist", seed=0, path=os.fspath(tmp_path))
