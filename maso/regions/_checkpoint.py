"""Checkpoint files of an enumeration: plain data, one checksummed record per finished task, resumable after a kill.

A checkpoint is a sequence of records, each framed as (all integers little-endian)::

    magic b"\\x89MASOCK\\n" (8 bytes) | meta length u32 | blob length u64 | payload CRC-32 u32 | frame CRC-32 u32
    | meta: JSON, UTF-8, padded with spaces so that the blob starts on 8 bytes
    | blob: the bytes of the record's arrays, each padded to 8 bytes

The frame CRC covers the 24 bytes before it (a damaged length is never trusted), the payload CRC the meta and
the blob. The meta lists each array as ``[name, dtype, shape, offset]`` with a dtype from a fixed set of
little-endian numeric types; arrays are read with ``np.frombuffer`` (read-only views). Nothing in a checkpoint is
ever executed (no pickle). A damaged record is skipped: the reader resyncs on the next magic, so the valid records
after it are kept, and a [`CheckpointWarning`][maso.errors.CheckpointWarning] says what is computed again.

Records, in order: the *header* (format, maso version, digests of the network, domain, tol and method), the
*plan* (the stage the domain was split to, the number of planned cells and a digest of their codes, the task
bounds over them, and the slivers found while planning) and one *task* record per finished task (its regions
and slivers). The plan fixes the tasks, whatever the number of workers: any worker count resumes any checkpoint.

One process writes a checkpoint at a time (a POSIX lock, held while work remains); a complete checkpoint is only
read, so it may be read-only.

Tiled slices ([`slice_regions`][maso.slice_regions] with ``tiles`` and ``checkpoint``) use the same file format:
their header names the restricted network, the window, the grid, the tolerance and the method; their plan is the
grid's tiles (one task each); a task record holds one tile's slice (see ``maso.slices._slice``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import math
import os
import stat
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from maso._validation import outside_maso
from maso._version import __version__
from maso.core.network import Network
from maso.core.polytope import Polytope
from maso.errors import CheckpointError, CheckpointWarning
from maso.regions._parallel import _pack_regions, _pack_slivers, _unpack_regions, _unpack_slivers
from maso.regions._records import Region, Sliver

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one process per checkpoint is up to the user
    fcntl = None  # type: ignore[assignment]

MAGIC = b"\x89MASOCK\n"
#: Version of the record layout; files of a newer format are refused.
FORMAT = 1
_FRAME = struct.Struct("<8sIQI")
_FRAME_CRC = struct.Struct("<I")
_HEAD = _FRAME.size + _FRAME_CRC.size
_DTYPES = frozenset({"|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "<f8"})
def _a(what: Any) -> str:
    return f"an {what}" if str(what)[:1] in "aeiou" else f"a {what}"


# how a header field is named in the message of a checkpoint of another run
_HEADER_NAMES = {"tol": "tolerance", "network_plane": "network or plane", "tiles": "tile grid"}
_REGION_KEYS = ("code", "rows", "A", "b", "units", "fu_len", "fu", "center", "radius", "map_A", "map_b")

# Checkpoints this process writes, by (device, inode): a POSIX lock does not exclude the process holding it, and
# closing any descriptor of the file would drop it.
_HELD: set[tuple[int, int]] = set()
_HELD_LOCK = threading.RLock()


# ------------------------------------------------------------------------------------------------ digests
def _digest_arrays(hsh: Any, arrays: dict[str, Any]) -> None:
    for k, v in sorted(arrays.items()):
        hsh.update(k.encode())
        if isinstance(v, np.ndarray):
            v = np.ascontiguousarray(v)
            hsh.update(f"{v.dtype.str}{v.shape}".encode())
            hsh.update(v.tobytes())
        else:
            hsh.update(repr(v).encode())


def _network_digest(net: Network) -> str:
    hsh = hashlib.sha256(repr(net.input_shape).encode())
    for node in net.nodes:
        hsh.update(f"|{node.name}|{node.inputs}|{node.shape}|".encode())
        if node.layer is not None:
            hsh.update(type(node.layer).__name__.encode())
            _digest_arrays(hsh, {k: v for k, v in vars(node.layer).items() if not k.startswith("_")})
            _digest_arrays(hsh, node.layer.arrays())
    return hsh.hexdigest()


def _run_header(net: Network, domain: Polytope, tol: float, method: str) -> dict[str, Any]:
    """The header record of a run: what a checkpoint must match to be resumed by it."""
    dom = hashlib.sha256()
    _digest_arrays(dom, {"A": np.asarray(domain.A), "b": np.asarray(domain.b)})
    return {"kind": "header", "format": FORMAT, "maso": __version__, "network": _network_digest(net),
            "domain": dom.hexdigest(), "tol": float(tol), "method": method}


def _cells_digest(codes: list[np.ndarray]) -> str:
    """Digest of the codes of the planned cells: a resumed run must plan the same cells."""
    hsh = hashlib.sha256(str(len(codes)).encode())
    for c in codes:
        hsh.update(np.ascontiguousarray(c).tobytes())
    return hsh.hexdigest()


# ------------------------------------------------------------------------------------------------ records
def _encode(meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """One framed record (see the module docs)."""
    specs, parts, off = [], [], 0
    for name, a in (arrays or {}).items():
        a = np.asarray(a)
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        if a.dtype.str not in _DTYPES:
            raise TypeError(f"internal: array {name!r} of dtype {a.dtype} cannot go into a checkpoint")
        raw = a.tobytes()
        specs.append([name, a.dtype.str, list(a.shape), off])
        parts.append(raw + bytes(-len(raw) % 8))
        off += len(parts[-1])
    js = json.dumps({**meta, "arrays": specs}, separators=(",", ":"), allow_nan=False).encode()
    js += b" " * (-(len(js) + _HEAD) % 8)
    blob = b"".join(parts)
    frame = _FRAME.pack(MAGIC, len(js), len(blob), zlib.crc32(blob, zlib.crc32(js)))
    return frame + _FRAME_CRC.pack(zlib.crc32(frame)) + js + blob


class _Bad(Exception):
    """No valid record at an offset; ``truncated`` when the file ends inside what looks like one."""

    def __init__(self, why: str, truncated: bool = False) -> None:
        super().__init__(why)
        self.why, self.truncated = why, truncated


def _record_at(data: bytes, p: int) -> tuple[int, dict[str, Any], dict[str, np.ndarray]]:
    """The record starting at ``p``: (its end, meta, arrays); `_Bad` if there is none."""
    n = len(data)
    if n - p < _HEAD:
        if MAGIC.startswith(data[p:p + len(MAGIC)]):
            raise _Bad("truncated record", truncated=True)
        raise _Bad("no record marker")
    magic, meta_len, blob_len, crc = _FRAME.unpack_from(data, p)
    if magic != MAGIC:
        raise _Bad("no record marker")
    if zlib.crc32(memoryview(data)[p:p + _FRAME.size]) != _FRAME_CRC.unpack_from(data, p + _FRAME.size)[0]:
        raise _Bad("damaged record frame (checksum mismatch)")
    start = p + _HEAD
    end = start + meta_len + blob_len
    if end > n:
        raise _Bad("truncated record", truncated=True)
    view = memoryview(data)
    if zlib.crc32(view[start + meta_len:end], zlib.crc32(view[start:start + meta_len])) != crc:
        raise _Bad("damaged record (checksum mismatch)")
    try:
        meta = json.loads(bytes(view[start:start + meta_len]))
        if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
            raise TypeError("no record kind")
        arrays = _arrays(data, start + meta_len, blob_len, meta.pop("arrays"))
    except (ValueError, TypeError, KeyError) as e:  # a valid checksum over a malformed record: not maso's
        raise _Bad(f"malformed record ({e})") from None
    return end, meta, arrays


def _arrays(data: bytes, base: int, blob_len: int, specs: Any) -> dict[str, np.ndarray]:
    if not isinstance(specs, list):
        raise TypeError("array list")
    out = {}
    for spec in specs:
        name, dt, shape, off = spec
        if not (isinstance(name, str) and dt in _DTYPES and isinstance(shape, list)
                and all(type(k) is int and k >= 0 for k in shape) and type(off) is int and off >= 0 and off % 8 == 0):
            raise ValueError(f"array spec {spec!r}")
        dtype = np.dtype(dt)
        count = math.prod(shape)
        if off + count * dtype.itemsize > blob_len:
            raise ValueError(f"array {name!r} past the end of its record")
        if count:
            a = np.frombuffer(data, dtype=dtype, count=count, offset=base + off).reshape(shape)
        else:
            a = np.zeros(shape, dtype=dtype)
            a.setflags(write=False)
        out[name] = a
    return out


def _scan(data: bytes, start: int) -> tuple[list[tuple[int, int, dict, dict]], list[tuple[int, int, str]], bool]:
    """Every valid record from ``start`` on, the damaged spans between them (resyncing on the next magic), and
    whether the file ends with a record cut short (a kill while writing: dropped without a warning)."""
    records, bad, truncated = [], [], False
    p, n = start, len(data)
    while p < n:
        try:
            end, meta, arrays = _record_at(data, p)
        except _Bad as e:
            q = data.find(MAGIC, p + 1)
            while q != -1:
                try:
                    _record_at(data, q)
                    break
                except _Bad:
                    q = data.find(MAGIC, q + 1)
            if q == -1 and e.truncated:
                truncated = True
            else:
                bad.append((p, n if q == -1 else q, e.why))
            p = n if q == -1 else q
            continue
        records.append((p, end, meta, arrays))
        p = end
    return records, bad, truncated


# ------------------------------------------------------------------------------------------------ the file
class _Checkpoint:
    """A checkpoint opened for one run. Everything is checked on opening, before any work:

    * ``plan`` (the stored plan's meta, or None), ``plan_slivers``, and ``done``: task -> (regions, slivers);
    * while work remains the file is held open for writing, under an exclusive lock; a complete checkpoint is only
      read. `close` releases it.
    """

    def __init__(self, path: str | bytes | os.PathLike, header: dict[str, Any], net: Network,
                 decode: Callable[[dict[str, Any], dict[str, np.ndarray]], Any] | None = None) -> None:
        self.path = self.name = os.fsdecode(path)
        self.header = header
        self.net = net
        # a task record's payload from its meta and arrays (an enumeration's: its regions and slivers); raises
        # ValueError, TypeError, KeyError or IndexError on a malformed record
        self._decode = self._enumeration_task if decode is None else decode
        self._unit = "tile" if header.get("what") == "tiled slice" else "task"  # what a task is, in messages
        self.plan: dict[str, Any] | None = None
        self.plan_slivers: list[Sliver] = []
        self.done: dict[int, Any] = {}
        self._keep: list[tuple[int, int]] = []  # byte spans of the records in use (header, plan, tasks)
        self._bad: list[tuple[int, int, str]] = []
        self._fd: int | None = None
        self._key: tuple[int, int] | None = None
        self._end = 0
        self._truncated = self._rewritten = False
        with _HELD_LOCK:
            data = self._read()
            if data:
                self._load(data)
                if self.complete:
                    self._warn_damaged()
                    return
            self._open_for_writing(new=not data)

    # -- state -------------------------------------------------------------------------------------------
    @property
    def n_tasks(self) -> int | None:
        return None if self.plan is None else len(self.plan["bounds"]) - 1

    @property
    def complete(self) -> bool:
        return self.plan is not None and len(self.done) == self.n_tasks

    # -- reading -----------------------------------------------------------------------------------------
    def _error(self, what: str) -> CheckpointError:
        return CheckpointError(f"Checkpoint {self.name!r} {what}")

    def _stat(self) -> os.stat_result | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            parent = os.path.dirname(os.path.abspath(self.name))
            if not os.path.isdir(parent):
                raise self._error(f"cannot be created: its directory {parent!r} does not exist. Create the directory "
                                  "first, or pass another path.") from None
            return None
        except OSError as e:
            raise self._error(f"cannot be used: {e.strerror or e}.") from None
        if stat.S_ISDIR(st.st_mode):
            raise self._error("is a directory: pass the path of a file, e.g. "
                              f"{os.path.join(self.name, 'run.ckpt')!r}.")
        if not stat.S_ISREG(st.st_mode):
            raise self._error("is not a regular file (a device, a pipe or a socket): pass the path of a file.")
        if (st.st_dev, st.st_ino) in _HELD:
            raise self._error("is in use by another run (an enumeration or a slice) in this process: wait for it "
                              "to finish, or pass another path.")
        return st

    def _read(self) -> bytes:
        """The file's bytes (empty if there is none), read without opening it for writing."""
        if self._stat() is None:
            return b""
        try:
            with open(self.path, "rb") as fh:
                return fh.read()
        except PermissionError:
            raise self._error("cannot be read: permission denied. Make it readable, or pass another path.") from None
        except OSError as e:
            raise self._error(f"cannot be read: {e.strerror or e}.") from None

    def _load(self, data: bytes) -> None:
        """Check the header, then take the plan and the task records (damaged ones are noted in ``_bad``)."""
        self.plan, self.plan_slivers, self.done, self._keep = None, [], {}, []
        try:
            end, meta, _ = _record_at(data, 0)
        except _Bad as e:
            raise self._header_error(data, e) from None
        self._check_header(meta)
        self._keep.append((0, end))
        records, self._bad, self._truncated = _scan(data, end)
        self._end = records[-1][1] if records else end
        for start, stop, meta, arrays in records:
            try:
                if meta["kind"] == "plan" and self.plan is None:
                    self.plan, self.plan_slivers = self._check_plan(meta), _unpack_slivers(arrays)
                elif meta["kind"] == "task" and self.plan is not None and meta.get("plan") == self.plan["id"]:
                    task, n_tasks = meta["task"], self.n_tasks
                    assert n_tasks is not None  # the plan is read
                    if type(task) is not int or not 0 <= task < n_tasks:
                        raise ValueError(f"task {task!r} out of range")
                    if task in self.done:  # written twice (before checkpoints were locked): the first is kept
                        continue
                    self.done[task] = self._decode(meta, arrays)
                else:
                    continue
            except (ValueError, TypeError, KeyError, IndexError) as e:
                self._bad.append((start, stop, f"malformed {meta.get('kind')} record ({e})"))
                continue
            self._keep.append((start, stop))

    def _header_error(self, data: bytes, e: _Bad) -> CheckpointError:
        if e.truncated:
            return self._error(f"is truncated: the file ends inside its header record ({len(data)} bytes), as "
                               "when a run is killed while it starts. Delete it to start over.")
        if data[:len(MAGIC)] == MAGIC:
            return self._error(f"is damaged: its header record fails its check ({e.why}). Delete it to start over.")
        if len(data) > 8 and data[8] == 0x80:
            return self._error("is a pickle, not a maso checkpoint (checkpoints of maso before 0.2 were pickles, "
                               "and so are many other tools' files). maso does not unpickle checkpoints, since "
                               "unpickling a file can run any code; the file is left untouched. Delete it to start "
                               "over, or pass another path.")
        return self._error("is not a maso checkpoint (it does not start with maso's checkpoint marker); it is left "
                           "untouched. Pass another path.")

    def _check_header(self, meta: dict[str, Any]) -> None:
        want = self.header
        if meta.get("kind") != "header":
            raise self._error("is not a maso checkpoint (its first record is not a checkpoint header); it is left "
                              "untouched. Pass another path.")
        if meta.get("format") != FORMAT:
            raise self._error(f"has record format {meta.get('format')!r}, which this maso ({want['maso']}, format "
                              f"{FORMAT}) does not read. Resume it with the maso that wrote it, or delete it.")
        if meta.get("maso") != want["maso"]:
            raise self._error(f"was written by maso {meta.get('maso')}; this is maso {want['maso']}, whose results "
                              "may differ, so the two are not mixed. Finish it with that version, or delete it to "
                              "start over.")
        theirs, ours = meta.get("what", "enumeration"), want.get("what", "enumeration")
        if theirs != ours:  # (an enumeration's header has no "what": checkpoints from before tiled slices had them)
            raise self._error(f"is the checkpoint of {_a(theirs)}, not of {_a(ours)}; it is left untouched. Pass "
                              "another path.")
        differ = [_HEADER_NAMES.get(key, key) for key in want if key not in ("kind", "format", "maso", "what")
                  and meta.get(key) != want[key]]
        if differ:
            raise self._error(f"belongs to another run (its {', '.join(differ)} differ{'s' if len(differ) == 1 else ''}"
                              "). Use a new path, or delete the file to start over.")

    def _check_plan(self, meta: dict[str, Any]) -> dict[str, Any]:
        stage, n_cells, bounds = meta["stage"], meta["n_cells"], meta["bounds"]
        if not (type(stage) is int and stage >= 0 and type(n_cells) is int and isinstance(bounds, list)
                and all(type(b) is int for b in bounds) and bounds[0] == 0 and bounds[-1] == n_cells
                and all(a < b for a, b in itertools.pairwise(bounds)) and isinstance(meta["cells"], str)
                and isinstance(meta["id"], str)):
            raise ValueError("inconsistent plan")
        return meta

    def _enumeration_task(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]
                          ) -> tuple[list[Region], list[Sliver]]:
        return self._regions(meta, arrays), _unpack_slivers(arrays)

    def _regions(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[Region]:
        """A task record's regions, after checking that its arrays fit together (a crafted record with a valid
        checksum must not make regions of the wrong shapes)."""
        net = self.net
        n = meta["n_regions"]
        if type(n) is not int or n < 0:
            raise ValueError(f"n_regions {n!r}")
        if n == 0:
            return []
        a = {k: arrays[k] for k in _REGION_KEYS}
        d, out = net.input_dim, net.output_dim
        rows = int(a["rows"].sum()) if a["rows"].ndim == 1 and a["rows"].min(initial=1) >= 0 else -1
        m = int(a["fu_len"].sum()) if a["fu_len"].ndim == 1 and a["fu_len"].min(initial=1) >= 0 else -1
        want = {"code": (n, net.n_units), "rows": (n,), "A": (rows, d), "b": (rows,), "units": (rows, 2),
                "fu_len": (rows,), "fu": (m,), "center": (n, d), "radius": (n,), "map_A": (n, out, d),
                "map_b": (n, out)}
        floats = ("A", "b", "center", "radius", "map_A", "map_b")
        wrong = [k for k, shape in want.items() if a[k].shape != shape
                 or (a[k].dtype.kind != "f" if k in floats else k != "code" and a[k].dtype.kind not in "iu")]
        if wrong or rows < 0 or m < 0 or a["code"].dtype != np.dtype(net.program.code_dtype):
            raise ValueError(f"region arrays of the wrong shape or dtype ({', '.join(wrong) or 'code dtype'})")
        return _unpack_regions({"n": n, **a})

    def _warn_damaged(self) -> None:
        if not self._bad:
            return
        spans = ", ".join(f"{a:,}-{b:,} ({why})" for a, b, why in sorted(self._bad)[:5])
        more = f" and {len(self._bad) - 5} more" if len(self._bad) > 5 else ""
        n_tasks = self.n_tasks  # None without a plan
        unit = self._unit
        if self.complete:
            what = f"every {unit} has a valid record, so nothing is recomputed"
        elif n_tasks is None:
            what = f"the plan of the run is lost with them, so every {unit} is computed again"
        else:
            what = f"the {n_tasks - len(self.done)} of {n_tasks} {unit}s without a valid record are computed"
        fixed = "" if self._fd is None else "; the file is rewritten without the damaged bytes" if self._rewritten \
            else "; the damaged bytes stay in the file (it could not be rewritten)"
        warnings.warn(f"Checkpoint {self.name!r} has {len(self._bad)} damaged record(s), skipped: bytes {spans}{more}; "
                      f"{what}{fixed}.", CheckpointWarning, stacklevel=outside_maso())

    # -- writing -----------------------------------------------------------------------------------------
    def _open_for_writing(self, new: bool) -> None:
        """Open, lock (failing at once if another process holds it), re-read under the lock, then cut a record
        left short by a kill, or rewrite the file without damaged records."""
        self._rewritten = False
        flags = os.O_RDWR | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags | (os.O_CREAT if new else 0), 0o666)
        except PermissionError:
            if new:
                raise self._error(f"cannot be created: permission denied in directory "
                                  f"{os.path.dirname(os.path.abspath(self.name))!r}. Pass a path in a writable "
                                  "directory.") from None
            n_tasks = self.n_tasks  # None without a plan
            todo = f"every {self._unit} remains" if n_tasks is None else \
                f"{n_tasks - len(self.done)} of {n_tasks} {self._unit}s remain"
            raise self._error(f"is read-only (permission denied), and {todo} to compute. Make it writable, or copy "
                              "it to a writable place and pass the copy.") from None
        except OSError as e:
            raise self._error(f"cannot be opened for writing: {e.strerror or e}.") from None
        try:
            self._lock(fd)
            data = self._read_fd(fd)
            if data:
                self._load(data)
            else:
                self._end = 0
                self._bad, self._truncated = [], False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        st = os.fstat(fd)
        self._key = (st.st_dev, st.st_ino)
        _HELD.add(self._key)
        try:
            if not data:
                self._append(_encode(self.header), "the header")
            elif self._bad:
                self._rewrite(data)
                self._warn_damaged()
            elif self._truncated or self._end < len(data):
                os.ftruncate(fd, self._end)  # the tail of a record cut short by a kill
        except BaseException:
            self.close()
            raise

    def _lock(self, fd: int) -> None:
        if fcntl is None:  # pragma: no cover
            return
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):  # a file system without locks: go on unlocked
                return
            raise self._error("is in use by another process (a run with the same checkpoint is going on). Wait "
                              "for it to finish, or pass another path.") from None
        try:  # the file we locked must still be the one at the path (another process may have rewritten it)
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except OSError:
            same = False
        if not same:
            raise self._error("was replaced while it was being opened (another process is using it). Wait for it to "
                              "finish, or pass another path.")

    @staticmethod
    def _read_fd(fd: int) -> bytes:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 24):
            chunks.append(chunk)
        return b"".join(chunks)

    def _rewrite(self, data: bytes) -> None:
        """Replace the file with its valid records only (atomically: a new file renamed over it)."""
        old = self._fd
        assert old is not None  # called with the file open for writing
        target = os.path.realpath(self.path)  # through a symbolic link: the file it names is replaced
        parent = os.path.dirname(target)
        try:
            fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=".tmp", dir=parent)
        except OSError:  # a read-only directory: keep the damaged bytes, append after them
            os.ftruncate(old, self._end)
            return
        try:
            if fcntl is not None:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            body = b"".join(data[a:b] for a, b in self._keep)
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            os.chmod(tmp, stat.S_IMODE(os.fstat(old).st_mode))
            os.replace(tmp, target)
        except OSError:
            os.close(fd)
            os.unlink(tmp)
            os.ftruncate(old, self._end)
            return
        except BaseException:  # Ctrl-C while rewriting: no temporary file or descriptor left behind
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _HELD.discard(self._key)
        self._fd, self._end, self._rewritten = fd, len(body), True
        st = os.fstat(fd)
        self._key = (st.st_dev, st.st_ino)
        _HELD.add(self._key)
        os.close(old)
        self._keep = []

    def _append(self, record: bytes, what: str) -> None:
        """Append one record, synced to disk; on failure (disk full, file-size limit...) cut it off again."""
        if self._fd is None:
            raise RuntimeError("internal: the checkpoint is not open for writing")
        try:
            os.lseek(self._fd, self._end, os.SEEK_SET)
            view = memoryview(record)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as e:
            try:
                os.ftruncate(self._fd, self._end)
            except OSError:
                pass
            kept = f"the {len(self.done)} finished {self._unit}(s) recorded before are kept" if self.plan is not None else \
                "nothing was recorded yet"
            raise self._error(f"could not be written ({what}): {e.strerror or e}. The record was cut off again and "
                              f"{kept}; free some space (or raise the file-size limit) and run again with the same "
                              "checkpoint to resume.") from e
        self._end += len(record)

    def write_plan(self, stage: int, codes: list[np.ndarray], bounds: list[int], min_tasks: int,
                   slivers: list[Sliver]) -> None:
        cells = _cells_digest(codes)
        plan_id = hashlib.sha256(f"{stage}|{len(codes)}|{cells}|{bounds}".encode()).hexdigest()[:32]
        meta = {"kind": "plan", "stage": stage, "n_cells": len(codes), "cells": cells, "bounds": bounds,
                "min_tasks": min_tasks, "id": plan_id}
        self._append(_encode(meta, _pack_slivers(slivers)), "the plan")
        self.plan, self.plan_slivers = meta, list(slivers)

    def save(self, task: int, regions: list[Region], slivers: list[Sliver]) -> None:
        pk = _pack_regions(regions)
        n = pk.pop("n")
        self.save_record(task, {"n_regions": n}, {**pk, **_pack_slivers(slivers)}, (regions, slivers))

    def save_record(self, task: int, meta: dict[str, Any], arrays: dict[str, np.ndarray], payload: Any) -> None:
        """Record a finished task: ``meta`` (JSON) and ``arrays`` as the file keeps them, ``payload`` as `done`
        holds it (what ``decode`` makes of the record when it is read back)."""
        assert self.plan is not None
        self._append(_encode({**meta, "kind": "task", "task": task, "plan": self.plan["id"]}, arrays),
                     f"{self._unit} {task}")
        self.done[task] = payload

    def close(self) -> None:
        if self._fd is not None:
            with _HELD_LOCK:
                _HELD.discard(self._key)
                os.close(self._fd)  # releases the lock
                self._fd = None
