"""Checkpoint files of an enumeration: one record per finished task, resumable after a kill."""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
from typing import Any

import numpy as np

from maso.errors import CheckpointError
from maso.network import Network
from maso.polytope import Polytope
from maso.regions._parallel import _pack_regions, _unpack_regions
from maso.regions._records import Region, Sliver


def _fingerprint(net: Network, domain: Polytope, tol: float, method: str) -> str:
    hsh = hashlib.sha256(method.encode())
    for node in net.nodes:
        hsh.update(node.name.encode())
        hsh.update(repr(node.shape).encode())
        if node.layer is not None:
            hsh.update(type(node.layer).__name__.encode())
            for k, v in sorted(node.layer.arrays().items()):
                hsh.update(k.encode())
                hsh.update(np.ascontiguousarray(v).tobytes())
    hsh.update(np.ascontiguousarray(domain.A).tobytes())
    hsh.update(np.ascontiguousarray(domain.b).tobytes())
    hsh.update(repr(tol).encode())
    return hsh.hexdigest()


class _Checkpoint:
    """Append-only record file: a header, then one length-prefixed pickle per finished task."""

    def __init__(self, path: str, fingerprint: str) -> None:
        self.path = path
        self.done: dict[int, tuple[list[Region], list[Sliver]]] = {}
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, "rb") as fh:
                head = _read_record(fh)
                if head is None or head.get("fingerprint") != fingerprint:
                    raise CheckpointError(
                        f"Checkpoint {path!r} belongs to another run (network, domain or tolerance differ). "
                        "Use a new path, or delete the file to start over."
                    )
                good = fh.tell()
                while True:
                    rec = _read_record(fh)
                    if rec is None:
                        break
                    self.done[rec["task"]] = (_unpack_regions(rec["regions"]), rec["slivers"])
                    good = fh.tell()
            with open(path, "r+b") as fh:  # drop a record cut short by a kill
                fh.truncate(good)
        else:
            with open(path, "wb") as fh:
                _write_record(fh, {"fingerprint": fingerprint})

    def save(self, task: int, regions: list[Region], slivers: list[Sliver]) -> None:
        with open(self.path, "ab") as fh:
            _write_record(fh, {"task": task, "regions": _pack_regions(regions), "slivers": slivers})


def _write_record(fh: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(struct.pack("<Q", len(data)) + data)
    fh.flush()
    os.fsync(fh.fileno())


def _read_record(fh: Any) -> Any:
    head = fh.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    data = fh.read(size)
    if len(data) < size:
        return None
    try:
        return pickle.loads(data)
    except Exception:
        return None
