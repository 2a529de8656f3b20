/*
 * dispatch.c: the run-time choice of the kernel level (scalar, AVX2, AVX-512) and the entry points that
 * call the chosen level's kernels.
 */
#include "kernels.h"

SvKernels	sv_kernels;
static SvKernelLevel sv_level = SV_KERNELS_SCALAR;

/* Point sv_kernels at the best implementation the CPU supports, capped at max_level. */
SvKernelLevel
sv_kernels_init(SvKernelLevel max_level)
{
	SvKernelLevel level = SV_KERNELS_SCALAR;

#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		__builtin_cpu_supports("f16c") && __builtin_cpu_supports("popcnt"))
		level = SV_KERNELS_AVX2;
	if (level == SV_KERNELS_AVX2 && __builtin_cpu_supports("avx512f") &&
		__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
		__builtin_cpu_supports("avx512vpopcntdq"))
		level = SV_KERNELS_AVX512;
#endif
	if (level > max_level)
		level = max_level;

	sv_kernels_fill_scalar(&sv_kernels);
	if (level >= SV_KERNELS_AVX2)
		sv_kernels_fill_avx2(&sv_kernels);
	if (level >= SV_KERNELS_AVX512)
		sv_kernels_fill_avx512(&sv_kernels);
	sv_level = level;
	return level;
}

/* The level chosen by the last sv_kernels_init(). */
SvKernelLevel
sv_kernels_level(void)
{
	return sv_level;
}

/* Human-readable name of a level. */
const char *
sv_kernels_level_name(SvKernelLevel level)
{
	switch (level)
	{
		case SV_KERNELS_AVX512:
			return "avx512";
		case SV_KERNELS_AVX2:
			return "avx2";
		default:
			return "scalar";
	}
}

/* sv_kernels.fs_scan of the current level. */
void
sv_fs_scan(const uint8_t *blocks, size_t nblocks, size_t nbytes, const uint8_t *tables, uint32_t *out)
{
	sv_kernels.fs_scan(blocks, nblocks, nbytes, tables, out);
}

/* sv_kernels.fs_select of the current level. */
size_t
sv_fs_select(const uint32_t *sums, size_t n, int32_t soff, const float *alpha, const float *r2,
			 float base, float f, float c0, float c1, float tau, uint32_t *idx)
{
	return sv_kernels.fs_select(sums, n, soff, alpha, r2, base, f, c0, c1, tau, idx);
}

/* sv_kernels.fs_select_u32 of the current level. */
size_t
sv_fs_select_u32(const uint32_t *sums, size_t n, uint32_t tau, uint32_t *idx)
{
	return sv_kernels.fs_select_u32(sums, n, tau, idx);
}

/* sv_kernels.code_dot of the current level. */
float
sv_code_dot(const float *q, const uint8_t *code, size_t dims, int bits)
{
	return sv_kernels.code_dot(q, code, dims, bits);
}
