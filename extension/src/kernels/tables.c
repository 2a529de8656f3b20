/*
 * tables.c: the query side of the scan kernels (per-byte float tables, FastScan nibble tables) and the
 * blocked layout of codes on a page (put, get, per-code sums).
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fill the per-byte lookup tables of the weights w (see kernels.h): each entry is a high-nibble sum plus a low-nibble sum. */
void
sv_lut_build(const float *w, size_t nbits, size_t nbytes, float *lut)
{
	for (size_t j = 0; j < nbytes; j++)
	{
		float	   *t = lut + j * 256;
		float		wb[8],
					hi[16],
					lo[16];

		for (int b = 0; b < 8; b++)
			wb[b] = (j * 8 + b < nbits) ? w[j * 8 + b] : 0.0f;
		hi[0] = lo[0] = 0.0f;
		/* each nibble adds its lowest set bit (bit 3 - ctz in MSB-first order) to a smaller nibble */
		for (unsigned v = 1; v < 16; v++)
		{
			hi[v] = hi[v & (v - 1)] + wb[3 - __builtin_ctz(v)];
			lo[v] = lo[v & (v - 1)] + wb[7 - __builtin_ctz(v)];
		}
		for (int h = 0; h < 16; h++)
			for (int l = 0; l < 16; l++)
				t[h * 16 + l] = hi[h] + lo[l];
	}
}

/* The sum of lut[j][c[j * step]] over a code's nbytes bytes, in four accumulators (a fixed order). */
static inline float
lut_sum(const uint8_t *c, size_t step, size_t nbytes, const float *lut)
{
	float		s0 = 0.0f,
				s1 = 0.0f,
				s2 = 0.0f,
				s3 = 0.0f;
	size_t		j = 0;

	for (; j + 4 <= nbytes; j += 4)
	{
		s0 += lut[j * 256 + c[j * step]];
		s1 += lut[(j + 1) * 256 + c[(j + 1) * step]];
		s2 += lut[(j + 2) * 256 + c[(j + 2) * step]];
		s3 += lut[(j + 3) * 256 + c[(j + 3) * step]];
	}
	for (; j < nbytes; j++)
		s0 += lut[j * 256 + c[j * step]];
	return (s0 + s1) + (s2 + s3);
}

/* Sum of the weights over the set bits of each code, four table lookups in flight. */
void
sv_lut_scan(const uint8_t *codes, size_t ncodes, size_t stride, size_t nbytes, const float *lut, float *out)
{
	for (size_t i = 0; i < ncodes; i++)
		out[i] = lut_sum(codes + i * stride, 1, nbytes, lut);
}

/* Byte offset of position p's high-nibble table (the low one is 64 bytes further). */
static inline size_t
fs_table_offset(size_t p)
{
	return (p >> 1) * 128 + (p & 1) * 32;
}

/* Store the 16-entry tables hi and lo of position p, each twice (see kernels.h). */
static void
fs_store_tables(uint8_t *tables, size_t p, const uint8_t *hi, const uint8_t *lo)
{
	uint8_t    *t = tables + fs_table_offset(p);

	memcpy(t, hi, 16);
	memcpy(t + 16, hi, 16);
	memcpy(t + 64, lo, 16);
	memcpy(t + 80, lo, 16);
}

/* Quantize the weights and fill the inner product tables (see kernels.h). */
void
sv_fs_tables_ip(const float *w, size_t nbits, size_t nbytes, uint8_t *tables, SvFsQuery *out)
{
	float		maxabs = 0.0f,
				delta,
				err = 0.0f;
	int32_t		vsum = 0;

	for (size_t i = 0; i < nbits; i++)
		if (fabsf(w[i]) > maxabs)
			maxabs = fabsf(w[i]);
	delta = maxabs > 0.0f ? maxabs / (float) SV_FS_LEVEL : 1.0f;
	for (size_t p = 0; p < nbytes; p++)
	{
		int			v[8];
		uint8_t		hi[16],
					lo[16];

		for (int b = 0; b < 8; b++)
		{
			size_t		i = p * 8 + b;

			v[b] = 0;
			if (i < nbits)
			{
				float		r = rintf(w[i] / delta);

				if (r > SV_FS_LEVEL)
					r = SV_FS_LEVEL;
				if (r < -SV_FS_LEVEL)
					r = -SV_FS_LEVEL;
				v[b] = (int) r;
				vsum += v[b];
				err += fabsf(w[i] - delta * (float) v[b]);
			}
		}
		for (int n = 0; n < 16; n++)
		{
			int			sh = SV_FS_BIAS,
						sl = SV_FS_BIAS;

			/* nibble bit 3 is the first of its four code bits */
			for (int j = 0; j < 4; j++)
				if (n & (8 >> j))
				{
					sh += v[j];
					sl += v[4 + j];
				}
			hi[n] = (uint8_t) sh;
			lo[n] = (uint8_t) sl;
		}
		fs_store_tables(tables, p, hi, lo);
	}
	out->delta = delta;
	out->vsum = vsum;
	out->err_l1 = err;
}

/* Fill the Hamming tables of the query's first qbits bits (see kernels.h). */
void
sv_fs_tables_hamming(const uint8_t *query, size_t qbits, size_t nbytes, uint8_t *tables)
{
	for (size_t p = 0; p < nbytes; p++)
	{
		uint8_t		mask = 0,
					hi[16],
					lo[16];

		for (int b = 0; b < 8; b++)
			if (p * 8 + b < qbits)
				mask |= (uint8_t) (0x80 >> b);
		for (int n = 0; n < 16; n++)
		{
			hi[n] = (uint8_t) sv_popcount64_portable((uint64_t) ((n ^ (query[p] >> 4)) & (mask >> 4)));
			lo[n] = (uint8_t) sv_popcount64_portable((uint64_t) ((n ^ (query[p] & 15)) & (mask & 15)));
		}
		fs_store_tables(tables, p, hi, lo);
	}
}

/* Write a code into its slot of a blocked array. */
void
sv_fs_put(uint8_t *blocks, size_t lanes, size_t nbytes, size_t slot, const uint8_t *code)
{
	uint8_t    *b = blocks + (slot / lanes) * lanes * nbytes + slot % lanes;

	for (size_t p = 0; p < nbytes; p++)
		b[p * lanes] = code[p];
}

/* Read a code from its slot of a blocked array. */
void
sv_fs_get(const uint8_t *blocks, size_t lanes, size_t nbytes, size_t slot, uint8_t *code)
{
	const uint8_t *b = blocks + (slot / lanes) * lanes * nbytes + slot % lanes;

	for (size_t p = 0; p < nbytes; p++)
		code[p] = b[p * lanes];
}

/* Table sums of the first ncodes codes of a blocked array, one code at a time. */
void
sv_fs_scan_lanes(const uint8_t *blocks, size_t ncodes, size_t lanes, size_t nbytes,
				 const uint8_t *tables, uint32_t *out)
{
	for (size_t i = 0; i < ncodes; i++)
	{
		const uint8_t *b = blocks + (i / lanes) * lanes * nbytes + i % lanes;
		uint32_t	s = 0;

		for (size_t p = 0; p < nbytes; p++)
		{
			const uint8_t *t = tables + fs_table_offset(p);
			uint8_t		c = b[p * lanes];

			s += t[c >> 4] + t[64 + (c & 15)];
		}
		out[i] = s;
	}
}
