"""Read a W&B offline run file (`run-<id>.wandb`) without W&B's own code paths.

The file is a 7-byte header (":W&B", magic 0xBEE1, version) followed by LevelDB's log
format: 32 KiB blocks of chunks, each chunk 4 bytes CRC, 2 bytes length (little
endian), 1 byte type (1 full, 2 first, 3 middle, 4 last; a block's tail shorter than a
chunk header is zero padding). Each record is a protobuf `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path) -> list[bytes]:
    raw = Path(path).read_bytes()
    if raw[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (header {raw[:4]!r})")
    out, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(raw):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + HEADER])
        if length == 0 and kind == 0:  # padding to the end of the block
            pos += left
            continue
        chunk = raw[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
    return out


def history(path: Path) -> list[dict]:
    """Every logged row: {key: value} with nested keys joined by '/'."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for data in records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows


def config(path: Path) -> dict:
    """The run's config: every `config` record's updates, in order."""
    from wandb.proto import wandb_internal_pb2

    values: dict = {}
    for data in records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "run":
            for item in record.run.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values
