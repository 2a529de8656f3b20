"""Build the extension's SIMD kernels (extension/src/kernels/*.c) as a standalone shared library and
call them with ctypes: the benchmarks and kernel tests run the very code the extension runs.

Needs the source tree and gcc; the library goes to a folder the caller names (e.g. bench/results).
"""

from __future__ import annotations

import ctypes
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "extension" / "src" / "kernels"
LEVELS = {"scalar": 0, "avx2": 1, "avx512": 2}

SIMD_MK = REPO / "extension" / "simd.mk"


def simd_flags() -> dict[str, list[str]]:
    """Per-file compiler flags, read from extension/simd.mk (the extension's build uses the same file)."""
    values = {}
    for line in SIMD_MK.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, _, flags = line.partition("=")
            values[name.strip()] = flags.split()
    portable: dict[str, list[str]] = {name: [] for name in ("scalar.c", "dispatch.c", "tables.c", "composite.c", "rotate.c")}
    return {**portable, "avx2.c": values["AVX2_FLAGS"], "avx512.c": values["AVX512_FLAGS"]}


def build(out_dir: Path) -> Path:
    """Compile the kernels into out_dir/libsvkernels.so (rebuilt when a source is newer)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / "libsvkernels.so"
    flags_by_file = simd_flags()
    sources = [SRC / name for name in flags_by_file] + [SRC / "kernels.h", SRC / "topk_heap.h", SIMD_MK]
    if lib.exists() and all(lib.stat().st_mtime >= s.stat().st_mtime for s in sources):
        return lib
    objects = []
    for name, flags in flags_by_file.items():
        obj = out_dir / (name[:-2] + ".o")
        subprocess.run(
            ["gcc", "-O2", "-fPIC", "-Wall", "-Werror", "-ffp-contract=off", "-fno-strict-aliasing", *flags,
             "-c", str(SRC / name), "-o", str(obj)],
            check=True,
        )
        objects.append(str(obj))
    subprocess.run(["gcc", "-shared", "-o", str(lib), *objects], check=True)
    return lib


@dataclass
class Kernels:
    """ctypes view of the standalone kernels library."""

    lib: ctypes.CDLL

    @classmethod
    def load(cls, out_dir: Path) -> "Kernels":
        lib = ctypes.CDLL(str(build(out_dir)))
        lib.sv_kernels_init.restype = ctypes.c_int
        lib.sv_kernels_init.argtypes = [ctypes.c_int]
        lib.sv_hamming_topk.restype = ctypes.c_size_t
        lib.sv_hamming_topk.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p,
            ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
        ]
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        lib.sv_fs_tables_ip.argtypes = [vp, sz, sz, vp, vp]
        lib.sv_fs_tables_hamming.argtypes = [vp, sz, sz, vp]
        lib.sv_fs_scan.argtypes = [vp, sz, sz, vp, vp]
        lib.sv_fs_scan_lanes.argtypes = [vp, sz, sz, sz, vp, vp]
        lib.sv_fs_select.restype = sz
        f = ctypes.c_float
        lib.sv_fs_select.argtypes = [vp, sz, ctypes.c_int32, vp, vp, f, f, f, f, f, vp]
        lib.sv_code_dot.restype = f
        lib.sv_code_dot.argtypes = [vp, vp, sz, ctypes.c_int]
        lib.sv_fs_select_u32.restype = sz
        lib.sv_fs_select_u32.argtypes = [vp, sz, ctypes.c_uint32, vp]
        lib.sv_lut_build.argtypes = [vp, sz, sz, vp]
        lib.sv_lut_scan.argtypes = [vp, sz, sz, sz, vp, vp]
        lib.sv_rotation_steps.restype = sz
        lib.sv_rotation_steps.argtypes = [sz, ctypes.c_int]
        lib.sv_rotation_masks.argtypes = [sz, ctypes.c_uint64, ctypes.c_int, vp]
        lib.sv_rotate.argtypes = [vp, vp, sz, vp, ctypes.c_int, vp]
        lib.sv_unrotate.argtypes = [vp, vp, sz, vp, ctypes.c_int, vp]
        return cls(lib)

    def use(self, level: str) -> str:
        """Cap the kernels at `level`; returns the level in use."""
        got = self.lib.sv_kernels_init(LEVELS[level])
        return {v: k for k, v in LEVELS.items()}[got]

    def hamming_topk(self, codes: npt.NDArray[np.uint8], query: npt.NDArray[np.uint8], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest rows (ids, distances), ascending, ties by lower id."""
        ids = np.empty(k, dtype=np.uint64)
        dists = np.empty(k, dtype=np.uint32)
        n = self.lib.sv_hamming_topk(codes.ctypes.data, codes.shape[0], codes.shape[1], query.ctypes.data,
                                     k, ids.ctypes.data, dists.ctypes.data)
        return ids[:n].astype(np.int64), dists[:n]


    def rotate(self, x: npt.NDArray[np.float32], seed: int, rounds: int, inverse: bool = False) -> np.ndarray:
        """sv_rotate (or sv_unrotate) of x: the index's rotation of its coded dims."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty_like(x)
        work = np.empty(x.size, dtype=np.float64)
        masks = np.empty(self.lib.sv_rotation_steps(x.size, rounds) * x.size, dtype=np.uint32)
        self.lib.sv_rotation_masks(x.size, seed, rounds, masks.ctypes.data)
        fn = self.lib.sv_unrotate if inverse else self.lib.sv_rotate
        fn(x.ctypes.data, out.ctypes.data, x.size, masks.ctypes.data, rounds, work.ctypes.data)
        return out

    def fs_tables_ip(self, w: npt.NDArray[np.float32], nbytes: int) -> tuple[np.ndarray, float, int, float]:
        """The C inner product tables (kernel layout, nbytes * 64 bytes), delta, vsum and err_l1."""
        w = np.ascontiguousarray(w, dtype=np.float32)
        tables = np.zeros(nbytes * 64, dtype=np.uint8)
        out = SvFsQuery()
        self.lib.sv_fs_tables_ip(w.ctypes.data, w.size, nbytes, tables.ctypes.data, ctypes.byref(out))
        return tables, out.delta, out.vsum, out.err_l1

    def fs_tables_hamming(self, query: npt.NDArray[np.uint8], qbits: int, nbytes: int) -> np.ndarray:
        """The C Hamming tables (kernel layout)."""
        q = np.zeros(nbytes, dtype=np.uint8)
        q[: query.size] = query
        tables = np.zeros(nbytes * 64, dtype=np.uint8)
        self.lib.sv_fs_tables_hamming(q.ctypes.data, qbits, nbytes, tables.ctypes.data)
        return tables

    def fs_scan(self, blocks: npt.NDArray[np.uint8], nblocks: int, nbytes: int, tables: np.ndarray) -> np.ndarray:
        """sv_kernels.fs_scan at the current level: sums of nblocks * 32 codes."""
        out = np.empty(nblocks * 32, dtype=np.uint32)
        self.lib.sv_fs_scan(blocks.ctypes.data, nblocks, nbytes, tables.ctypes.data, out.ctypes.data)
        return out

    def fs_scan_lanes(self, blocks: npt.NDArray[np.uint8], ncodes: int, lanes: int, nbytes: int,
                      tables: np.ndarray) -> np.ndarray:
        """The portable scan of a blocked array of any lanes."""
        out = np.empty(ncodes, dtype=np.uint32)
        self.lib.sv_fs_scan_lanes(blocks.ctypes.data, ncodes, lanes, nbytes, tables.ctypes.data, out.ctypes.data)
        return out

    def fs_select(self, sums: np.ndarray, soff: int, alpha: np.ndarray, r2: np.ndarray | None,
                  base: float, f: float, c0: float, c1: float, tau: float) -> np.ndarray:
        """sv_kernels.fs_select at the current level: indices whose lower bound is <= tau."""
        sums = np.ascontiguousarray(sums, dtype=np.uint32)
        alpha = np.ascontiguousarray(alpha, dtype=np.float32)
        r2p = None if r2 is None else np.ascontiguousarray(r2, dtype=np.float32)
        idx = np.empty(max(sums.size, 1), dtype=np.uint32)
        m = self.lib.sv_fs_select(sums.ctypes.data, sums.size, soff, alpha.ctypes.data,
                                  None if r2p is None else r2p.ctypes.data, base, f, c0, c1, tau, idx.ctypes.data)
        return idx[:m]

    def fs_select_u32(self, sums: np.ndarray, tau: int) -> np.ndarray:
        """sv_kernels.fs_select_u32 at the current level: indices with sums <= tau."""
        sums = np.ascontiguousarray(sums, dtype=np.uint32)
        idx = np.empty(max(sums.size, 1), dtype=np.uint32)
        m = self.lib.sv_fs_select_u32(sums.ctypes.data, sums.size, tau, idx.ctypes.data)
        return idx[:m]

    def lut_scan(self, codes: npt.NDArray[np.uint8], w: npt.NDArray[np.float32]) -> np.ndarray:
        """The previous scan (per-byte float tables, scalar): sum of w over each row-major code's set bits."""
        n, nbytes = codes.shape
        w = np.ascontiguousarray(w, dtype=np.float32)
        lut = np.empty(nbytes * 256, dtype=np.float32)
        self.lib.sv_lut_build(w.ctypes.data, w.size, nbytes, lut.ctypes.data)
        out = np.empty(n, dtype=np.float32)
        self.lib.sv_lut_scan(codes.ctypes.data, n, nbytes, nbytes, lut.ctypes.data, out.ctypes.data)
        return out


class SvFsQuery(ctypes.Structure):
    """SvFsQuery of kernels.h."""

    _fields_ = [("delta", ctypes.c_float), ("vsum", ctypes.c_int32), ("err_l1", ctypes.c_float)]
