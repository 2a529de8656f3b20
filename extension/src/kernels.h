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

#include <stddef.h>
#include <stdint.h>

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
 * Asymmetric scoring of sign codes by table lookup.  sv_lut_build fills lut (nbytes * 256 floats)
 * so that lut[j * 256 + v] is the sum of w[8j + b] over the bits b set in byte value v (MSB-first);
 * w has nbits weights and the bits past nbits weigh nothing.  sv_lut_scan then writes, for each of
 * ncodes codes laid out stride bytes apart, the sum of w over the code's set bits.
 */
void		sv_lut_build(const float *w, size_t nbits, size_t nbytes, float *lut);
void		sv_lut_scan(const uint8_t *codes, size_t ncodes, size_t stride, size_t nbytes, const float *lut, float *out);

/* Choose the best implementation for this CPU (or at most max_level); returns the level chosen. */
SvKernelLevel sv_kernels_init(SvKernelLevel max_level);

/* The level currently in use. */
SvKernelLevel sv_kernels_level(void);

/* Name of a level, for messages and benchmarks. */
const char *sv_kernels_level_name(SvKernelLevel level);

/* Convert one IEEE binary16 value to float (exact). */
float		sv_half_to_float(uint16_t h);

/* Bit-reversal of every byte value (bit j of entry b is bit 7-j of b); filled by sv_kernels_init. */
extern uint8_t sv_bitrev8[256];

/* Implementations per level, defined in kernels.c, kernels_avx2.c and kernels_avx512.c. */
void		sv_kernels_fill_scalar(SvKernels *k);
void		sv_kernels_fill_avx2(SvKernels *k);
void		sv_kernels_fill_avx512(SvKernels *k);

#endif
