/*
 * multibit.h: the multibit type, shared by its I/O (types/multibit.c) and its scoring (functions/maxsim.c).
 *
 * Layout: int32 varlena header, int16 ntokens, int16 dims, then ntokens codes of ceil(dims / 8) bytes
 * each, token after token, bits MSB-first, padding bits zero.
 */
#ifndef SHRINKVEC_MULTIBIT_H
#define SHRINKVEC_MULTIBIT_H

#include "postgres.h"

#include "fmgr.h"

#include "shrinkvec.h"

/* The most tokens a query, document or multibit may have. */
#define SV_MAX_TOKENS 1024

/* shrinkvec's multibit: the sign bits of a document's tokens. */
typedef struct SvMultiBit
{
	int32		vl_len_;
	int16		ntokens;
	int16		dims;
	uint8		data[FLEXIBLE_ARRAY_MEMBER];
} SvMultiBit;

#define SV_MULTIBIT_NBYTES(dims) (((dims) + 7) / 8)
#define SV_MULTIBIT_SIZE(ntokens, dims) (offsetof(SvMultiBit, data) + (size_t) (ntokens) * SV_MULTIBIT_NBYTES(dims))
#define PG_GETARG_SVMULTIBIT_P(n) check_multibit((SvMultiBit *) PG_DETOAST_DATUM(PG_GETARG_DATUM(n)))

/* Check a multibit's stored size against its token count and dims (shrinkvec.h); returns m. */
static inline SvMultiBit *
check_multibit(SvMultiBit *m)
{
	if (unlikely(VARSIZE(m) < offsetof(SvMultiBit, data) || m->ntokens < 0 || m->dims < 0 ||
				 VARSIZE(m) != SV_MULTIBIT_SIZE(m->ntokens, m->dims)))
		sv_check_datum_size("multibit", VARSIZE(m),
							VARSIZE(m) < offsetof(SvMultiBit, data) ? offsetof(SvMultiBit, data) :
							SV_MULTIBIT_SIZE(Max(m->ntokens, 0), Max(m->dims, 0)),
							VARSIZE(m) < offsetof(SvMultiBit, data) ? 0 : m->ntokens, "tokens");
	return m;
}

SvMultiBit *sv_multibit_new(int ntokens, int dims);
void		sv_check_token_count(int n, const char *what);

#endif
