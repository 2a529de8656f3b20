"""Build the extension's SIMD kernels (extension/src/kernels*.c) as a standalone shared library and
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

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "extension" / "src"
LEVELS = {"scalar": 0, "avx2": 1, "avx512": 2}

SIMD_MK = REPO / "extension" / "simd.mk"


def simd_flags() -> dict[str, list[str]]:
    """Per-file compiler flags, read from extension/simd.mk (the extension's build uses the same file)."""
    values = {}
    for line in SIMD_MK.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, _, flags = line.partition("=")
            values[name.strip()] = flags.split()
    return {"kernels.c": [], "kernels_avx2.c": values["AVX2_FLAGS"], "kernels_avx512.c": values["AVX512_FLAGS"]}


def build(out_dir: Path) -> Path:
    """Compile the kernels into out_dir/libsvkernels.so (rebuilt when a source is newer)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / "libsvkernels.so"
    flags_by_file = simd_flags()
    sources = [SRC / name for name in flags_by_file] + [SRC / "kernels.h", SIMD_MK]
    if lib.exists() and all(lib.stat().st_mtime >= s.stat().st_mtime for s in sources):
        return lib
    objects = []
    for name, flags in flags_by_file.items():
        obj = out_dir / (name[:-2] + ".o")
        subprocess.run(
            ["gcc", "-O2", "-fPIC", "-Wall", "-Werror", "-ffp-contract=off", *flags, "-c", str(SRC / name), "-o", str(obj)],
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

