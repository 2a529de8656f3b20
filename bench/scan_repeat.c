/*
 * scan_repeat.c: call the index scan kernels many times over the same small array from C, so a
 * benchmark can time a page-sized working set (in cache) without a ctypes call per page.
 * Built by bench_scan_kernel.py against the standalone kernels library.
 */
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* sv_fs_scan of the same blocks reps times. */
void
fs_repeat(const uint8_t *blocks, size_t nblocks, size_t nbytes, const uint8_t *tables, uint32_t *out, size_t reps)
{
	for (size_t r = 0; r < reps; r++)
		sv_fs_scan(blocks, nblocks, nbytes, tables, out);
}

/* sv_lut_scan of the same row-major codes reps times. */
void
lut_repeat(const uint8_t *codes, size_t ncodes, size_t nbytes, const float *lut, float *out, size_t reps)
{
	for (size_t r = 0; r < reps; r++)
		sv_lut_scan(codes, ncodes, nbytes, nbytes, lut, out);
}
