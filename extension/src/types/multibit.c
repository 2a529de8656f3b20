/*
 * multibit.c: the multibit type, the sign bits of a multi-vector document's tokens (one code per token):
 * text and binary I/O, its accessors and equality.  Scoring is in functions/maxsim.c.
 *
 * Text form: the tokens' bit strings as in bit[]: '{1011,0110}'.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/varbit.h"

#include "shrinkvec.h"
#include "types/multibit.h"

/* Allocate a zeroed multibit of ntokens codes of dims bits. */
SvMultiBit *
sv_multibit_new(int ntokens, int dims)
{
	Size		size = SV_MULTIBIT_SIZE(ntokens, dims);
	SvMultiBit *m = (SvMultiBit *) palloc0(size);

	SET_VARSIZE(m, size);
	m->ntokens = (int16) ntokens;
	m->dims = (int16) dims;
	return m;
}

/* Check the token count of an input; what names it. */
void
sv_check_token_count(int n, const char *what)
{
	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s must not be empty", what)));
	if (n > SV_MAX_TOKENS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s has %d tokens, more than the limit of %d", what, n, SV_MAX_TOKENS)));
}

/* Check a multibit's header values read from input. */
static void
check_multibit_header(int ntokens, int dims)
{
	sv_check_token_count(ntokens, "multibit");
	if (dims < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("multibit tokens must have at least 1 bit")));
	if (dims > SV_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("multibit tokens cannot have more than %d bits", SV_MAX_DIM)));
}

PG_FUNCTION_INFO_V1(multibit_in);
/* Text input: '{1011,0110}', one bit string per token, all of the same length. */
Datum
multibit_in(PG_FUNCTION_ARGS)
{
	const char *lit = PG_GETARG_CSTRING(0);
	const char *p = lit;
	int			ntokens = 0,
				dims = -1;
	StringInfoData bits;
	SvMultiBit *m;

	initStringInfo(&bits);
	while (*p == ' ')
		p++;
	if (*p != '{')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type multibit: \"%s\"", lit),
				 errdetail("multibit must start with \"{\".")));
	p++;
	for (;;)
	{
		int			len = 0;

		while (*p == ' ')
			p++;
		while (*p == '0' || *p == '1')
		{
			appendStringInfoChar(&bits, *p);
			len++;
			p++;
		}
		while (*p == ' ')
			p++;
		if (len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type multibit: \"%s\"", lit),
					 errdetail("Every token must be a non-empty string of 0 and 1.")));
		if (dims < 0)
			dims = len;
		else if (len != dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different bit lengths %d and %d", dims, len)));
		ntokens++;
		if (ntokens > SV_MAX_TOKENS)
			sv_check_token_count(ntokens, "multibit");
		if (*p == ',')
		{
			p++;
			continue;
		}
		if (*p == '}')
			break;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type multibit: \"%s\"", lit)));
	}
	p++;
	while (*p == ' ')
		p++;
	if (*p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type multibit: \"%s\"", lit),
				 errdetail("Junk after closing right brace.")));
	check_multibit_header(ntokens, dims);
	m = sv_multibit_new(ntokens, dims);
	for (int k = 0; k < ntokens; k++)
	{
		uint8	   *out = m->data + (Size) k * SV_MULTIBIT_NBYTES(dims);

		for (int i = 0; i < dims; i++)
			if (bits.data[(Size) k * dims + i] == '1')
				out[i >> 3] |= (uint8) (0x80 >> (i & 7));
	}
	pfree(bits.data);
	PG_RETURN_POINTER(m);
}

PG_FUNCTION_INFO_V1(multibit_out);
/* Text output: '{1011,0110}'. */
Datum
multibit_out(PG_FUNCTION_ARGS)
{
	SvMultiBit *m = PG_GETARG_SVMULTIBIT_P(0);
	int			nbytes = SV_MULTIBIT_NBYTES(m->dims);
	StringInfoData s;

	initStringInfo(&s);
	enlargeStringInfo(&s, m->ntokens * (m->dims + 1) + 2);
	appendStringInfoChar(&s, '{');
	for (int k = 0; k < m->ntokens; k++)
	{
		const uint8 *c = m->data + (Size) k * nbytes;

		if (k > 0)
			appendStringInfoChar(&s, ',');
		for (int i = 0; i < m->dims; i++)
			appendStringInfoChar(&s, ((c[i >> 3] >> (7 - (i & 7))) & 1) ? '1' : '0');
	}
	appendStringInfoChar(&s, '}');
	PG_RETURN_CSTRING(s.data);
}

PG_FUNCTION_INFO_V1(multibit_recv);
/* Binary input: int16 ntokens, int16 dims, then the packed codes (padding bits must be zero). */
Datum
multibit_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			ntokens = pq_getmsgint(buf, 2);
	int			dims = pq_getmsgint(buf, 2);
	int			nbytes;
	SvMultiBit *m;

	check_multibit_header((int16) ntokens, (int16) dims);
	m = sv_multibit_new(ntokens, dims);
	nbytes = SV_MULTIBIT_NBYTES(dims);
	pq_copymsgbytes(buf, (char *) m->data, ntokens * nbytes);
	if (dims % 8 != 0)
	{
		uint8		pad = (uint8) (0xFF >> (dims % 8));

		for (int k = 0; k < ntokens; k++)
			if (m->data[(Size) k * nbytes + nbytes - 1] & pad)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						 errmsg("multibit token %d has padding bits set past bit %d", k + 1, dims)));
	}
	PG_RETURN_POINTER(m);
}

PG_FUNCTION_INFO_V1(multibit_send);
/* Binary output: int16 ntokens, int16 dims, then the packed codes. */
Datum
multibit_send(PG_FUNCTION_ARGS)
{
	SvMultiBit *m = PG_GETARG_SVMULTIBIT_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint16(&buf, (uint16) m->ntokens);
	pq_sendint16(&buf, (uint16) m->dims);
	pq_sendbytes(&buf, (const char *) m->data, m->ntokens * SV_MULTIBIT_NBYTES(m->dims));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(multibit_tokens);
/* SQL: multibit_tokens(multibit) -> integer, the number of tokens. */
Datum
multibit_tokens(PG_FUNCTION_ARGS)
{
	SvMultiBit *m = PG_GETARG_SVMULTIBIT_P(0);

	PG_RETURN_INT32(m->ntokens);
}

PG_FUNCTION_INFO_V1(multibit_dims);
/* SQL: vector_dims(multibit) -> integer, the bits per token. */
Datum
multibit_dims(PG_FUNCTION_ARGS)
{
	SvMultiBit *m = PG_GETARG_SVMULTIBIT_P(0);

	PG_RETURN_INT32(m->dims);
}

PG_FUNCTION_INFO_V1(multibit_eq);
/* SQL: multibit = multibit: the same token count, dims and bits. */
Datum
multibit_eq(PG_FUNCTION_ARGS)
{
	SvMultiBit *a = PG_GETARG_SVMULTIBIT_P(0);
	SvMultiBit *b = PG_GETARG_SVMULTIBIT_P(1);

	PG_RETURN_BOOL(VARSIZE(a) == VARSIZE(b) && a->ntokens == b->ntokens && a->dims == b->dims &&
				   memcmp(a->data, b->data, VARSIZE(a) - offsetof(SvMultiBit, data)) == 0);
}
