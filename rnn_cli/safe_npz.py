"""Reading `.npz` archives from untrusted sources, without pickle and without trusting sizes.

`np.load` would allocate whatever shape a member's header declares before finding out that the
data is not there, and reads every member on access. Here the archive is opened with `zipfile`;
for each wanted member the `.npy` header is parsed first, and the data is read only when the dtype
is a plain number or text type (never an object/pickle array) and the declared size equals the
member's size, so memory use is bounded by the file (compressed members may expand at most
`MAX_EXPANSION` times). zipfile checks each member's CRC. Every problem is a `ModelFileError`.
"""

from __future__ import annotations

import io
import math
import os
import zipfile

import numpy as np

from rnn_cli.errors import ModelFileError

MAX_MEMBERS = 4096  # members in one archive
MAX_EXPANSION = 20  # a deflated member may expand at most this many times (+ 1 MiB)


def read_npz(path: str, wanted, hint: str, data: bytes | None = None) -> dict[str, np.ndarray]:
    """{name: array} of the `.npy` members of the archive at `path` for which `wanted(name)`.

    With `data`, the archive is those bytes (a model file shipped to a Dask worker) and `path`
    only names it in messages. ModelFileError (with `hint`) for anything that is not a clean
    archive of plain arrays.
    """
    if data is not None:
        head, size = bytes(data[:4]), len(data)
    else:
        try:
            with open(path, "rb") as f:
                head = f.read(4)
                size = os.fstat(f.fileno()).st_size
        except OSError as e:
            raise ModelFileError(f"cannot read the model file {path}: {e.strerror or e}",
                                 hint="check the path and its permissions") from None
    if head != b"PK\x03\x04":
        what = ("an empty file" if not head else "a single .npy array" if head == b"\x93NUM"
                else "not an .npz archive")
        raise ModelFileError(f"{path} is not an rnn-cli model file ({what})", hint=hint)
    try:
        with zipfile.ZipFile(path if data is None else io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise ModelFileError(f"{path} holds {len(infos)} members, more than a model file "
                                     f"has ({MAX_MEMBERS})", hint=hint)
            arrays = {}
            for info in infos:
                name = info.filename[:-4]
                if not info.filename.endswith(".npy") or not wanted(name):
                    continue
                if name in arrays:
                    raise ModelFileError(f"{path}: array '{name}' appears twice", hint=hint)
                if info.compress_size > size:  # a size the file cannot hold: a crafted header
                    raise ModelFileError(f"{path}: array '{name}' claims {info.compress_size:,} "
                                         f"bytes in a {size:,}-byte file", hint=hint)
                arrays[name] = _read_member(zf, info, path, hint)
            return arrays
    except ModelFileError:
        raise
    except Exception as e:  # BadZipFile, CRC, EOF, zlib, bad .npy header, ...: all one refusal
        raise ModelFileError(f"{path} is not a readable model file ({type(e).__name__}: {e})",
                             hint=hint) from None


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, hint: str) -> np.ndarray:
    """One `.npy` member: header first, then exactly the bytes it declares (CRC-checked)."""
    name = info.filename[:-4]
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelFileError(f"{path}: array '{name}' uses zip compression method "
                             f"{info.compress_type}; only stored or deflated members are read",
                             hint=hint)
    if info.compress_type == zipfile.ZIP_DEFLATED and \
            info.file_size > MAX_EXPANSION * info.compress_size + (1 << 20):
        raise ModelFileError(f"{path}: array '{name}' would expand from {info.compress_size:,} "
                             f"to {info.file_size:,} bytes; refused", hint=hint)
    fmt = np.lib.format
    with zf.open(info) as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ModelFileError(f"{path}: array '{name}' has .npy format {version}", hint=hint)
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None \
                or dtype.kind not in "biufU" or dtype.itemsize == 0:
            raise ModelFileError(f"{path}: array '{name}' has dtype {dtype}; refused (a model "
                                 "file holds plain numbers and text, never pickled objects)",
                                 hint=hint)
        if any(d < 0 for d in shape):
            raise ModelFileError(f"{path}: array '{name}' has shape {shape}", hint=hint)
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if f.tell() + nbytes != info.file_size:
            raise ModelFileError(f"{path}: array '{name}' declares {list(shape)} {dtype} "
                                 f"({nbytes:,} bytes) but holds {info.file_size - f.tell():,}",
                                 hint=hint)
        data = f.read(nbytes)
        if len(data) != nbytes or f.read(1):
            raise ModelFileError(f"{path}: array '{name}' is truncated", hint=hint)
    flat = np.frombuffer(data, dtype=dtype, count=count) if count else np.empty(0, dtype)
    return flat.reshape(shape, order="F" if fortran else "C").copy()
