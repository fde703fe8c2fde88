"""Readers of the loggers' files, written from the formats' specs (no TensorFlow, no wandb sync).

* TensorBoard event files are TFRecords: ``uint64 length``, ``uint32 masked CRC-32C of
  the length``, the serialized ``Event`` proto, ``uint32 masked CRC-32C of the data``.
  A ``SessionLog.START`` event at step T (``purge_step``) hides every earlier event
  at a step ≥ T, as TensorBoard does.
* W&B's ``.wandb`` files are LevelDB logs: a 7-byte header (``:W&B``, magic ``0xBEE1``,
  version), 32 KiB blocks of chunks (``uint32 CRC-32 of type+data``, ``uint16 length``,
  ``uint8 type``: full, first, middle, last), each record a serialized ``Record`` proto.

Each reader checks every checksum, so a test fails on a torn or misparsed file.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from tensorboardX.crc32c import crc32c
from tensorboardX.proto import event_pb2
from wandb.proto import wandb_internal_pb2

Event = event_pb2.Event  # pyright: ignore[reportAttributeAccessIssue]  (generated protos)
SessionLog = event_pb2.SessionLog  # pyright: ignore[reportAttributeAccessIssue]
Record = wandb_internal_pb2.Record  # pyright: ignore[reportAttributeAccessIssue]


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecords(path: Path) -> list[bytes]:
    """The records of one TFRecord file, each checked against its two CRCs."""
    data, out, at = path.read_bytes(), [], 0
    while at < len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        (len_crc,) = struct.unpack_from("<I", data, at + 8)
        assert len_crc == _masked(crc32c(data[at : at + 8])), f"{path}: bad length CRC at {at}"
        body = data[at + 12 : at + 12 + length]
        (body_crc,) = struct.unpack_from("<I", data, at + 12 + length)
        assert body_crc == _masked(crc32c(body)), f"{path}: bad data CRC at {at}"
        out.append(body)
        at += 16 + length
    return out


def read_tensorboard(logdir: Path) -> dict[str, dict[int, float]]:
    """``{tag: {step: value}}`` of every scalar in ``logdir``'s event files, purges applied."""
    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for raw in tfrecords(path):
            event = Event.FromString(raw)
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                for steps in scalars.values():
                    for step in [s for s in steps if s >= event.step]:
                        del steps[step]
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


BLOCK = 32768
HEADER = 7


def leveldb_records(path: Path) -> list[bytes]:
    """The records of a W&B LevelDB-format log, each chunk checked against its CRC-32."""
    data = path.read_bytes()
    ident, magic, version = struct.unpack_from("<4sHB", data, 0)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path}: not a W&B log"
    out, pending, at = [], b"", HEADER
    while at + HEADER <= len(data):
        left = BLOCK - at % BLOCK
        if left < HEADER:  # a block's tail too short for a chunk header is padding
            at += left
            continue
        crc, length, kind = struct.unpack_from("<IHB", data, at)
        if length == 0 and kind == 0:
            at += left
            continue
        chunk = data[at + HEADER : at + HEADER + length]
        assert crc == zlib.crc32(chunk, zlib.crc32(bytes([kind]))), f"{path}: bad CRC at {at}"
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            out.append(pending)
        at += HEADER + length
    return out


def read_wandb(run_root: Path) -> tuple[list[dict], dict]:
    """``(history rows, config)`` of every offline run under ``run_root/wandb`` in order.

    Each history row maps the logged keys to their values and ``_step`` to its step.
    """
    rows: list[dict] = []
    config: dict = {}
    for path in sorted(run_root.glob("wandb/offline-run-*/run-*.wandb")):
        for raw in leveldb_records(path):
            record = Record.FromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "history":
                row = {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in record.history.item
                }
                row["_step"] = record.history.step.num
                rows.append(row)
            elif kind in ("config", "run"):
                update = record.config.update if kind == "config" else record.run.config.update
                for item in update:
                    config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return rows, config
