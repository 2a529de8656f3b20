/*
 * kernels.h: the arithmetic of shrinkvec's codes, free of PostgreSQL headers.
 *
 * Bits are MSB-first within each byte (bit i of a code is (b[i/8] >> (7 - i%8)) & 1),
 * as in PostgreSQL's bit type and pgvector's binary_quantize.  Every kernel has a
 * portable scalar version, an AVX2 one and an AVX-512 one; sv_kernels_init() points
 * the sv_* function pointers at the best version the CPU runs.  The file compiles
 * outside PostgreSQL too, so the benchmarks call the very same code.
 */
#ifndef SHRINKVEC_KERNELS_H
#define SHRINKVEC_KERNELS_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Which implementation the dispatcher chose. */
typedef enum SvKernelLevel
{
	SV_KERNELS_SCALAR = 0,
	SV_KERNELS_AVX2 = 1,
	SV_KERNELS_AVX512 = 2
} SvKernelLevel;

/* One implementation of every kernel. */
typedef struct SvKernels
{
	/* number of set bits in nbytes bytes */
	uint64_t	(*popcount) (const uint8_t *a, size_t nbytes);
	/* number of differing bits between a and b over nbytes bytes */
	uint64_t	(*xor_popcount) (const uint8_t *a, const uint8_t *b, size_t nbytes);
	/* sum of q[i] over the i < nbits whose bit is set (MSB-first), accumulated in float */
	float		(*masked_sum) (const float *q, const uint8_t *bits, size_t nbits);
	/* sum of q[i] for i < n, accumulated in float */
	float		(*sum) (const float *q, size_t n);
	/* dot product and squared norms of a and b over n floats */
	void		(*dot_norms) (const float *a, const float *b, size_t n, float *dot, float *norma, float *normb);
	/* the same for IEEE half-precision inputs */
	void		(*half_dot_norms) (const uint16_t *a, const uint16_t *b, size_t n, float *dot, float *norma, float *normb);
	/* dot product of a and b over n floats */
	float		(*dot) (const float *a, const float *b, size_t n);
	/* dot products of four vectors a[0..3] with b over n floats, reading b once */
	void		(*dot4) (const float *const *a, const float *b, size_t n, float *out);
	/* Hamming distance of one query to ncodes consecutive codes of nbytes each */
	void		(*hamming_scan) (const uint8_t *codes, size_t ncodes, size_t nbytes, const uint8_t *query, uint32_t *out);
	/* nibble-table sums of nblocks blocks of SV_FS_LANES codes (see "Blocked codes" below) */
	void		(*fs_scan) (const uint8_t *blocks, size_t nblocks, size_t nbytes, const uint8_t *tables, uint32_t *out);
	/* indices i < n whose lower bound (see sv_fs_select) is kept against tau (sv_fs_keep: <= tau, NaN or +Inf), ascending */
	size_t		(*fs_select) (const uint32_t *sums, size_t n, int32_t soff, const float *alpha, const float *r2,
							  float base, float f, float c0, float c1, float tau, uint32_t *idx);
	/* indices i < n with sums[i] <= tau, ascending; returns how many */
	size_t		(*fs_select_u32) (const uint32_t *sums, size_t n, uint32_t tau, uint32_t *idx);
	/* sum of q[i] u_i over i < dims, u_i the unsigned bits-bit (8, 4 or 2) integers of code, MSB-first */
	float		(*code_dot) (const float *q, const uint8_t *code, size_t dims, int bits);
} SvKernels;

extern SvKernels sv_kernels;

/*
 * The k codes nearest to query by Hamming distance, ties broken by lower index: ids and distances
 * in ascending order are written to out_ids/out_dists; returns how many (min(k, ncodes)).
 * Scans in blocks with sv_kernels.hamming_scan and keeps a bounded max-heap.
 */
size_t		sv_hamming_topk(const uint8_t *codes, size_t ncodes, size_t nbytes, const uint8_t *query,
							size_t k, uint64_t *out_ids, uint32_t *out_dists);

/*
 * Asymmetric scoring of sign codes by table lookup (format 1's scan; the benchmarks' baseline).  sv_lut_build fills lut (nbytes * 256 floats)
 * so that lut[j * 256 + v] is the sum of w[8j + b] over the bits b set in byte value v (MSB-first;
 * summed as the high nibble's bits, in order, plus the low nibble's);
 * w has nbits weights and the bits past nbits weigh nothing.  sv_lut_scan then writes, for each of
 * ncodes codes laid out stride bytes apart, the sum of w over the code's set bits.
 */
void		sv_lut_build(const float *w, size_t nbits, size_t nbytes, float *lut);
void		sv_lut_scan(const uint8_t *codes, size_t ncodes, size_t stride, size_t nbytes, const float *lut, float *out);

/*
 * Blocked codes and nibble tables (the index's scan kernel, a FastScan over 1-bit codes).
 *
 * Layout: codes of nbytes bytes are stored in blocks of `lanes` codes; within a block, byte p of
 * code j is at p * lanes + j (byte-major).  A block of SV_FS_LANES = 32 codes therefore holds, for
 * each byte position, 32 bytes that one AVX2 register (or half an AVX-512 one) loads at once.
 * lanes = 1 is the plain row-major layout (codes too long for a 32-code block on a page).
 *
 * Tables: for each byte position p, a 16-entry table of the high nibble (bits 8p .. 8p+3, MSB
 * first) and one of the low nibble (bits 8p+4 .. 8p+7).  The sum for a code is
 *     S = sum_p hi_p[byte_p >> 4] + lo_p[byte_p & 15].
 * In memory, the tables of positions 2k and 2k+1 take 128 bytes at 128k:
 *     [hi_2k, hi_2k, hi_2k+1, hi_2k+1, lo_2k, lo_2k, lo_2k+1, lo_2k+1]   (16 bytes each)
 * so a 16-byte table is repeated into both 128-bit lanes a vpshufb reads.  nbytes is even.
 *
 * Inner product tables (vector opclasses): the weights w (the query, or query - centroid) are
 * quantized to v_i = rint(w_i / delta) in [-SV_FS_LEVEL, SV_FS_LEVEL], delta = max|w_i| / SV_FS_LEVEL,
 * and each nibble entry is the sum of v_i over its set bits plus SV_FS_BIAS (so entries are 0..120
 * and a byte's two entries add up to at most 240 without overflowing a byte).  Then
 *     sum over set bits of v_i = S - 2 * SV_FS_BIAS * nbytes,
 * and <w, s> for signs s_i = 2 b_i - 1 satisfies |<w, s> - delta * (2 (S - 2 SV_FS_BIAS nbytes) - vsum)|
 * <= err_l1 = sum_i |w_i - delta v_i|.  The index's scan takes delta * (2 (S - ...) - vsum) as the
 * inner product (the quantized query's), so the sums give every code's estimate and fs_select's test
 * against the k-th best is exact; err_l1 bounds how far that estimate is from the float query's.
 *
 * Hamming tables (bit_hamming_ops): each entry is popcount((nibble ^ query nibble) & mask), the
 * mask covering the first qbits bits; then S is the exact Hamming distance of the query prefix.
 */
#define SV_FS_LANES 32
#define SV_FS_LEVEL 15
#define SV_FS_BIAS (4 * SV_FS_LEVEL)
#define SV_FS_TABLE_BYTES(nbytes) ((size_t) (nbytes) * 64)

/* What the inner product tables need besides the tables: see above. */
typedef struct SvFsQuery
{
	float		delta;			/* quantization step */
	int32_t		vsum;			/* sum of the quantized v_i */
	float		err_l1;			/* sum_i |w_i - delta v_i| */
} SvFsQuery;

/* Quantize nbits weights and fill the tables for codes of nbytes (even); bits past nbits weigh 0. */
void		sv_fs_tables_ip(const float *w, size_t nbits, size_t nbytes, uint8_t *tables, SvFsQuery *out);

/* Fill the Hamming tables of a query's first qbits bits for codes of nbytes (even). */
void		sv_fs_tables_hamming(const uint8_t *query, size_t qbits, size_t nbytes, uint8_t *tables);

/* Write code into slot `slot` of a blocked array (blocks of `lanes` codes). */
void		sv_fs_put(uint8_t *blocks, size_t lanes, size_t nbytes, size_t slot, const uint8_t *code);

/* Read slot `slot` of a blocked array into code. */
void		sv_fs_get(const uint8_t *blocks, size_t lanes, size_t nbytes, size_t slot, uint8_t *code);

/* Table sums of the first ncodes codes of a blocked array of any lanes (portable). */
void		sv_fs_scan_lanes(const uint8_t *blocks, size_t ncodes, size_t lanes, size_t nbytes,
							 const uint8_t *tables, uint32_t *out);

/*
 * The bound sv_kernels.fs_select tests, for one code (the index's estimate when c0 carries no error
 * margin); every level computes exactly this,
 * in this order, without fused multiply-adds (so every level selects the same codes):
 *     t = c0 + c1 * (float) (sums[i] - soff);  lb = (base + r2[i]) + (f * alpha[i]) * t
 * with r2[i] read as 0 when r2 is NULL.
 */
float		sv_fs_bound(uint32_t sum, int32_t soff, float alpha, float r2, float base, float f, float c0, float c1);

/*
 * Does fs_select keep a code of bound lb against tau?  Yes unless lb is a finite number above tau: a
 * NaN or +Inf bound comes from factors that overflowed float (extreme values), which bound nothing.
 */
static inline bool
sv_fs_keep(float lb, float tau)
{
	return !(lb > tau) || lb == INFINITY;
}

/* sv_kernels.code_dot as a plain function (for ctypes callers). */
float		sv_code_dot(const float *q, const uint8_t *code, size_t dims, int bits);

/* sv_kernels.fs_scan, fs_select and fs_select_u32 as plain functions (for ctypes callers). */
void		sv_fs_scan(const uint8_t *blocks, size_t nblocks, size_t nbytes, const uint8_t *tables, uint32_t *out);
size_t		sv_fs_select(const uint32_t *sums, size_t n, int32_t soff, const float *alpha, const float *r2,
						 float base, float f, float c0, float c1, float tau, uint32_t *idx);
size_t		sv_fs_select_u32(const uint32_t *sums, size_t n, uint32_t tau, uint32_t *idx);

/* Choose the best implementation for this CPU (or at most max_level); returns the level chosen. */
SvKernelLevel sv_kernels_init(SvKernelLevel max_level);

/* The level currently in use. */
SvKernelLevel sv_kernels_level(void);

/* Name of a level, for messages and benchmarks. */
const char *sv_kernels_level_name(SvKernelLevel level);

/* Convert one IEEE binary16 value to float; exact for every input, NaN and Inf included. */
static inline float
sv_half_to_float(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exponent = (h >> 10) & 0x1F;
	uint32_t	mantissa = h & 0x3FF;
	uint32_t	bits;
	float		f;

	if (exponent == 0x1F)
		bits = sign | 0x7F800000 | (mantissa << 13);
	else if (exponent != 0)
		bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
	else if (mantissa == 0)
		bits = sign;
	else
	{
		/* subnormal: normalise the mantissa */
		exponent = 113;
		while ((mantissa & 0x400) == 0)
		{
			mantissa <<= 1;
			exponent--;
		}
		bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/* Count the set bits of a 64-bit word without relying on a popcnt instruction. */
static inline uint64_t
sv_popcount64_portable(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
	return (x * 0x0101010101010101ULL) >> 56;
}

/* Bit-reversal of every byte value (bit j of entry b is bit 7-j of b); filled by sv_kernels_fill_scalar (scalar.c). */
extern uint8_t sv_bitrev8[256];

/* Implementations per level, defined in scalar.c, avx2.c and avx512.c (this folder). */
void		sv_kernels_fill_scalar(SvKernels *k);
void		sv_kernels_fill_avx2(SvKernels *k);
void		sv_kernels_fill_avx512(SvKernels *k);

/*
 * Late interaction (functions/maxsim.c): exact MaxSim of nq query tokens against nd doc tokens, row-major, dim
 * floats each: sum over query tokens of the largest dot product (float, via sv_kernels.dot4/dot),
 * summed in double in query-token order.
 */
double		sv_maxsim_f32(const float *q, size_t nq, const float *d, size_t nd, size_t dim);

/*
 * rotate.c: the index's random orthogonal rotation of n coded dims (codes.py: rotate, unrotate), in
 * `rounds` rounds of sign flips and Walsh-Hadamard transforms.  The flips come from a seed, as masks
 * (sv_rotation_masks: sv_rotation_steps(n, rounds) * n of them, made once per index); work holds n doubles.
 */
size_t		sv_rotation_block(size_t n);
size_t		sv_rotation_steps(size_t n, int rounds);
void		sv_rotation_masks(size_t n, uint64_t seed, int rounds, uint32_t *masks);
bool		sv_rotate(const float *x, float *out, size_t n, const uint32_t *masks, int rounds, double *work);
void		sv_unrotate(const float *y, float *out, size_t n, const uint32_t *masks, int rounds, double *work);

#endif
