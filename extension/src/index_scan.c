/*
 * index_scan.c: ordered scans of a shrinkvec index.
 *
 * bit_hamming_ops: the scan keeps the best `shrinkvec.shortlist` entries by (Hamming distance, TID)
 * over the probed lists and returns them in that exact order with their exact distances.  When the
 * executor wants more, the next pass keeps the best entries strictly after the last one returned,
 * so a flat index yields the complete exact order, batch by batch.
 *
 * vector opclasses: the scan scores every entry of the probed lists asymmetrically (the float
 * query against the sign code, see index.h), keeps the best `shrinkvec.shortlist`, and returns them
 * with xs_recheckorderby and a distance of -Infinity, a lower bound of every true distance.  The
 * executor computes exact distances from the heap and returns the shortlist in exact order.
 */
#include "postgres.h"

#include <math.h>

#include "access/relscan.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "index.h"
#include "kernels.h"
#include "shrinkvec.h"

/* One candidate: its score and heap TID. */
typedef struct SvCandidate
{
	float		score;
	ItemPointerData tid;
} SvCandidate;

/* State of one scan. */
typedef struct SvScanOpaque
{
	SvIndexCache *cache;
	MemoryContext cxt;			/* reset at every rescan */
	int			strategy;		/* of the ORDER BY operator */
	bool		have_query;
	bool		started;

	/* the query */
	float	   *q;				/* coded dims of the (normalised) query, vector opclasses */
	uint8	   *qcode;			/* bit query, zero-padded to code_bytes */
	int			qbits;			/* bits of the bit query (<= code_bits) */
	int		   *probe_lists;	/* lists to scan, best first */
	int			nprobe;

	/* results of the current batch, best first */
	SvCandidate *results;
	int			nresults;
	int			next;
	bool		batch_full;		/* the batch was cut at the shortlist: more entries exist */
	bool		have_last;		/* bit scans: (last_score, last_tid) bounds the next batch */
	float		last_score;
	ItemPointerData last_tid;
} SvScanOpaque;

/* Is candidate a worse than b: larger score, or the same score and a later TID? */
static inline bool
sv_worse(const SvCandidate *a, const SvCandidate *b)
{
	if (a->score != b->score)
		return a->score > b->score;
	return ItemPointerCompare((ItemPointer) &a->tid, (ItemPointer) &b->tid) > 0;
}

/* Restore the max-heap property downwards from position i. */
static void
sv_sift_down(SvCandidate *heap, int n, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					m = i;
		SvCandidate t;

		if (l < n && sv_worse(&heap[l], &heap[m]))
			m = l;
		if (r < n && sv_worse(&heap[r], &heap[m]))
			m = r;
		if (m == i)
			return;
		t = heap[i];
		heap[i] = heap[m];
		heap[m] = t;
		i = m;
	}
}

/* Offer a candidate to a bounded max-heap of capacity k holding *n entries. */
static inline void
sv_offer(SvCandidate *heap, int *n, int k, float score, ItemPointer tid, bool *overflow)
{
	SvCandidate c;

	c.score = score;
	c.tid = *tid;
	if (*n < k)
	{
		int			i = (*n)++;

		heap[i] = c;
		while (i > 0 && sv_worse(&heap[i], &heap[(i - 1) / 2]))
		{
			SvCandidate t = heap[i];

			heap[i] = heap[(i - 1) / 2];
			heap[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
		return;
	}
	*overflow = true;
	if (sv_worse(&c, &heap[0]))
		return;
	heap[0] = c;
	sv_sift_down(heap, *n, 0);
}

/* qsort comparator: best candidate first. */
static int
sv_candidate_cmp(const void *a, const void *b)
{
	const SvCandidate *x = a,
			   *y = b;

	if (sv_worse(x, y))
		return 1;
	if (sv_worse(y, x))
		return -1;
	return 0;
}

/* One list's probe score and number, for choosing the lists to scan. */
typedef struct SvProbe
{
	float		score;
	int			list;
} SvProbe;

/* qsort comparator: lower probe score first, then lower list number. */
static int
sv_probe_cmp(const void *a, const void *b)
{
	const SvProbe *x = a,
			   *y = b;

	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return x->list - y->list;
}

/* Choose the shrinkvec.probes lists nearest to the query. */
static void
sv_choose_lists(SvScanOpaque *so)
{
	const SvMetaData *meta = &so->cache->meta;
	SvProbe    *probes;
	uint8	   *masked = NULL;

	so->nprobe = sv_effective_probes(meta->lists);
	so->probe_lists = palloc(sizeof(int) * so->nprobe);
	if (meta->lists == 1)
	{
		so->probe_lists[0] = 0;
		return;
	}
	probes = palloc(sizeof(SvProbe) * meta->lists);
	if (meta->elemtype == SV_ELEM_BIT)
		masked = palloc(meta->code_bytes);
	for (int i = 0; i < meta->lists; i++)
	{
		probes[i].list = i;
		if (meta->elemtype == SV_ELEM_BIT)
		{
			const uint8 *c = (const uint8 *) so->cache->centroids + (Size) i * meta->code_bytes;

			/* compare the query's prefix only */
			memcpy(masked, c, meta->code_bytes);
			for (int b = so->qbits; b < meta->code_bytes * 8; b++)
				masked[b / 8] &= (uint8) ~(0x80 >> (b % 8));
			probes[i].score = (float) sv_kernels.xor_popcount(masked, so->qcode, meta->code_bytes);
		}
		else
		{
			const float *c = (const float *) so->cache->centroids + (Size) i * meta->code_bits;
			float		dot = sv_kernels.dot(so->q, c, meta->code_bits);

			if (meta->kind == SV_KIND_IP)
				probes[i].score = -dot;
			else
				probes[i].score = so->cache->centroid_norm2[i] - 2.0f * dot;
		}
	}
	qsort(probes, meta->lists, sizeof(SvProbe), sv_probe_cmp);
	for (int i = 0; i < so->nprobe; i++)
		so->probe_lists[i] = probes[i].list;
	pfree(probes);
}

/* Is (score, tid) after the last candidate returned by the previous batch? */
static inline bool
sv_after_last(const SvScanOpaque *so, float score, ItemPointer tid)
{
	if (!so->have_last)
		return true;
	if (score != so->last_score)
		return score > so->last_score;
	return ItemPointerCompare(tid, (ItemPointer) &so->last_tid) > 0;
}

/*
 * Hint the CPU to load a page's header, special space and first codes (a page of a chain is at an
 * unpredictable address; the hardware prefetcher follows the rest of the codes).
 */
static inline void
sv_prefetch_page(Page page)
{
	__builtin_prefetch((const char *) page, 0, 3);
	__builtin_prefetch((const char *) page + SV_CODES_OFFSET, 0, 3);
	__builtin_prefetch((const char *) page + SV_CODES_OFFSET + 64, 0, 3);
	__builtin_prefetch((const char *) page + BLCKSZ - 64, 0, 3);
}

/*
 * Scan the probed lists once and fill results with the best shortlist candidates.
 *
 * Every page goes through the nibble-table kernel (kernels.h) and a SIMD threshold test against
 * the current k-th best score; only the entries that pass reach the top-k heap.  bit_hamming_ops:
 * the sums are exact Hamming distances.  Vector opclasses: the sums give the inner product with the
 * quantized query, and the test uses a lower bound of each entry's score (the quantization error is
 * at most err_l1), so an entry is skipped only when its exact score cannot beat the k-th best; the
 * entries that pass are scored exactly in float, as before.  The shortlist is that of exact float
 * scoring.
 */
static void
sv_scan_batch(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;
	int			k = sv_shortlist;
	SvCandidate *heap = palloc(sizeof(SvCandidate) * k);
	int			nheap = 0;
	bool		overflow = false;
	int			padded = (int) TYPEALIGN(SV_FS_LANES, meta->capacity);
	uint32	   *sums = palloc(sizeof(uint32) * padded);
	uint32	   *idx = palloc(sizeof(uint32) * padded);
	uint8	   *tables = palloc(SV_FS_TABLE_BYTES(meta->code_bytes));
	uint8	   *code = palloc(meta->code_bytes);
	float	   *w = NULL;
	float	   *lut = NULL;		/* per-byte float tables of w for exact scores (cosine, IP) */
	SvFsQuery	fq = {0};
	float		wsum = 0,
				wabs = 0,
				qnorm2 = 0;
	bool		is_bit = meta->elemtype == SV_ELEM_BIT;
	int32		soff = 2 * SV_FS_BIAS * meta->code_bytes;
	Buffer		nextbuf = InvalidBuffer;

	if (is_bit)
		sv_fs_tables_hamming(so->qcode, so->qbits, meta->code_bytes, tables);
	else
	{
		w = palloc(sizeof(float) * meta->code_bits);
		qnorm2 = sv_kernels.dot(so->q, so->q, meta->code_bits);
		if (meta->kind != SV_KIND_L2)
		{
			/* one set of tables serves every list: the weights are the query itself */
			memcpy(w, so->q, sizeof(float) * meta->code_bits);
			sv_fs_tables_ip(w, meta->code_bits, meta->code_bytes, tables, &fq);
			wsum = sv_kernels.sum(w, meta->code_bits);
			for (int d = 0; d < meta->code_bits; d++)
				wabs += fabsf(w[d]);
			lut = palloc(sizeof(float) * 256 * meta->code_bytes);
			sv_lut_build(w, meta->code_bits, meta->code_bytes, lut);
		}
	}

	for (int p = 0; p < so->nprobe; p++)
	{
		int			list = so->probe_lists[p];
		BlockNumber blk = sv_read_list(scan->indexRelation, meta, list).first;
		float		base = 0,
					f = -1.0f,
					c0 = 0,
					c1 = 0;

		if (!is_bit)
		{
			const float *c = (const float *) so->cache->centroids + (Size) list * meta->code_bits;
			float		qc = sv_kernels.dot(so->q, c, meta->code_bits);
			float		margin;

			if (meta->kind == SV_KIND_L2)
			{
				for (int d = 0; d < meta->code_bits; d++)
					w[d] = so->q[d] - c[d];
				sv_fs_tables_ip(w, meta->code_bits, meta->code_bytes, tables, &fq);
				wsum = sv_kernels.sum(w, meta->code_bits);
				wabs = 0;
				for (int d = 0; d < meta->code_bits; d++)
					wabs += fabsf(w[d]);
				base = qnorm2 + so->cache->centroid_norm2[list] - 2.0f * qc;
				f = -2.0f;
			}
			else if (meta->kind == SV_KIND_IP)
				base = -qc;
			else
				base = 1.0f - qc;

			/*
			 * <w, s> <= delta * (2 (S - soff) - vsum) + err_l1 (kernels.h); the margin also covers
			 * float rounding of the bound and of the exact scores (relative to sum |w_i|).
			 */
			margin = fq.err_l1 * 1.001f + 1e-4f * wabs + 1e-30f;
			c1 = 2.0f * fq.delta;
			c0 = margin - fq.delta * (float) fq.vsum;
		}

		while (blk != InvalidBlockNumber)
		{
			Buffer		buf;
			Page		page;
			int			n,
						m;
			ItemPointerData *tids;
			const uint8 *codes;
			BlockNumber next;

			CHECK_FOR_INTERRUPTS();
			buf = BufferIsValid(nextbuf) ? nextbuf : ReadBuffer(scan->indexRelation, blk);
			nextbuf = InvalidBuffer;
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			n = SvPageGetOpaque(page)->count;
			next = SvPageGetOpaque(page)->next;
			if (next != InvalidBlockNumber)
			{
				/* pin the next page of the chain and start loading it into cache while this one is scanned */
				nextbuf = ReadBuffer(scan->indexRelation, next);
				sv_prefetch_page(BufferGetPage(nextbuf));
			}
			tids = sv_page_tids(page, meta);
			codes = sv_page_codes(page, meta);
			if (n > 0)
			{
				if (meta->lanes == SV_FS_LANES)
					sv_kernels.fs_scan(codes, (n + SV_FS_LANES - 1) / SV_FS_LANES, meta->code_bytes, tables, sums);
				else
					sv_fs_scan_lanes(codes, n, meta->lanes, meta->code_bytes, tables, sums);
			}
			if (n == 0)
				;
			else if (is_bit)
			{
				uint32		tau = nheap == k ? (uint32) heap[0].score : PG_UINT32_MAX;

				m = (int) sv_kernels.fs_select_u32(sums, n, tau, idx);
				if (nheap == k && m < n)
					overflow = true;
				for (int j = 0; j < m; j++)
				{
					int			i = idx[j];
					float		score = (float) sums[i];

					if (sv_after_last(so, score, &tids[i]))
						sv_offer(heap, &nheap, k, score, &tids[i], &overflow);
				}
			}
			else
			{
				const float *alpha = sv_page_alpha(page, meta);
				const float *r2 = sv_page_r2(page, meta);
				float		tau = nheap == k ? heap[0].score : get_float4_infinity();

				/* a hair above the k-th best, so float rounding never drops a tie */
				if (nheap == k)
					tau += 1e-6f * fabsf(tau) + 1e-30f;
				m = (int) sv_kernels.fs_select(sums, n, soff, alpha, meta->kind == SV_KIND_L2 ? r2 : NULL,
											   base, f, c0, c1, tau, idx);

				/*
				 * The k-th best improves as the page's entries are scored: test each entry's bound
				 * again against it before scoring it exactly.
				 */
				for (int j = 0; j < m; j++)
				{
					int			i = idx[j];
					float		s;

					if (nheap == k &&
						sv_fs_bound(sums[i], soff, alpha[i], meta->kind == SV_KIND_L2 ? r2[i] : 0.0f, base, f, c0, c1) >
						heap[0].score + 1e-6f * fabsf(heap[0].score) + 1e-30f)
						continue;
					if (lut)
						s = sv_lut_score_blocked(codes, meta->lanes, meta->code_bytes, i, lut);
					else
					{
						sv_page_get_code(page, meta, i, code);
						s = sv_kernels.masked_sum(w, code, meta->code_bits);
					}
					if (meta->kind == SV_KIND_L2)
						sv_offer(heap, &nheap, k, base + r2[i] - 2.0f * alpha[i] * (2.0f * s - wsum), &tids[i], &overflow);
					else
						sv_offer(heap, &nheap, k, base - alpha[i] * (2.0f * s - wsum), &tids[i], &overflow);
				}
			}
			blk = next;
			UnlockReleaseBuffer(buf);
		}
	}

	qsort(heap, nheap, sizeof(SvCandidate), sv_candidate_cmp);
	so->results = heap;
	so->nresults = nheap;
	so->next = 0;
	so->batch_full = overflow;
	pfree(sums);
	pfree(idx);
	pfree(tables);
	pfree(code);
	if (w)
		pfree(w);
	if (lut)
		pfree(lut);
}

/*
 * Refuse a shortlist whose memory would exceed work_mem. The scan holds the candidates, and for a
 * vector opclass the executor keeps every candidate's heap tuple in its reorder queue until the
 * scan ends, so the estimate counts one full vector a candidate.
 */
static void
sv_check_scan_memory(const SvMetaData *meta)
{
	Size		per = sizeof(SvCandidate);
	Size		need;

	if (meta->elemtype != SV_ELEM_BIT)
		per += 64 + (Size) meta->dims * (meta->elemtype == SV_ELEM_HALFVEC ? 2 : 4);
	need = per * (Size) sv_shortlist;
	if (need > (Size) work_mem * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("shrinkvec.shortlist %d needs about %zu kB for its candidates, more than work_mem (%d kB)",
						sv_shortlist, need / 1024, work_mem),
				 errhint("Lower shrinkvec.shortlist or raise work_mem.")));
}

/* Start a scan. */
IndexScanDesc
sv_ambeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	SvScanOpaque *so = palloc0(sizeof(SvScanOpaque));

	so->cxt = AllocSetContextCreate(CurrentMemoryContext, "shrinkvec scan", ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	/* the AM owns the ORDER BY value arrays */
	scan->xs_orderbyvals = palloc0(sizeof(Datum) * Max(norderbys, 1));
	scan->xs_orderbynulls = palloc(sizeof(bool) * Max(norderbys, 1));
	memset(scan->xs_orderbynulls, true, sizeof(bool) * Max(norderbys, 1));
	return scan;
}

/* Read the query of the ORDER BY key into the scan state. */
static void
sv_set_query(SvScanOpaque *so, ScanKey orderby)
{
	const SvMetaData *meta = &so->cache->meta;
	Datum		value = orderby->sk_argument;

	so->strategy = orderby->sk_strategy;
	if (meta->elemtype == SV_ELEM_BIT)
	{
		VarBit	   *b = DatumGetVarBitP(value);
		int			len = VARBITLEN(b);

		if (len > meta->code_bits || len < 1)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_LENGTH_MISMATCH),
					 errmsg("query has %d bits, the index stores %d", len, meta->code_bits),
					 errhint("A query may be a prefix of the indexed codes, not longer.")));
		if (len < meta->code_bits && so->strategy == 1)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_LENGTH_MISMATCH),
					 errmsg("different bit lengths %d and %d", meta->code_bits, len),
					 errhint("Use the operator <^> to search with a prefix of the codes.")));
		so->qbits = len;
		so->qcode = palloc0(meta->code_bytes);
		memcpy(so->qcode, VARBITS(b), VARBITBYTES(b));
	}
	else
	{
		int			dims;
		float	   *full;

		if (meta->elemtype == SV_ELEM_VECTOR)
		{
			SvVector   *v = (SvVector *) PG_DETOAST_DATUM(value);

			dims = v->dim;
			full = v->x;
		}
		else
		{
			SvHalfVec  *v = (SvHalfVec *) PG_DETOAST_DATUM(value);

			dims = v->dim;
			full = palloc(sizeof(float) * dims);
			for (int i = 0; i < dims; i++)
				full[i] = sv_half_to_float(v->x[i]);
		}
		if (dims != meta->dims)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different vector dimensions %d and %d", meta->dims, dims)));
		so->q = palloc(sizeof(float) * meta->code_bits);
		memcpy(so->q, full, sizeof(float) * meta->code_bits);
		for (int i = 0; i < dims; i++)
			if (isnan(full[i]) || isinf(full[i]))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("NaN or Infinity not allowed in a query vector")));
		if (meta->kind == SV_KIND_COSINE)
		{
			float		norm = sqrtf(sv_kernels.dot(full, full, dims));

			if (norm > 0)
				for (int i = 0; i < meta->code_bits; i++)
					so->q[i] /= norm;
		}
	}
}

/* (Re)start a scan with new keys. */
void
sv_amrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	MemoryContext old;

	MemoryContextReset(so->cxt);
	so->cache = sv_index_cache(scan->indexRelation);
	so->have_query = false;
	so->started = false;
	so->have_last = false;
	so->results = NULL;
	so->nresults = so->next = 0;
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	if (scan->numberOfOrderBys == 0 || (scan->orderByData[0].sk_flags & SK_ISNULL))
		return;					/* no query: the scan returns nothing */
	old = MemoryContextSwitchTo(so->cxt);
	sv_set_query(so, &scan->orderByData[0]);
	MemoryContextSwitchTo(old);
	so->have_query = true;
}

/* Return the next candidate. */
bool
sv_amgettuple(IndexScanDesc scan, ScanDirection dir)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta;
	bool		is_bit;
	SvCandidate *c;

	if (!so->have_query)
		return false;
	/* rd_amcache may have been rebuilt by a relcache invalidation since the last call */
	so->cache = sv_index_cache(scan->indexRelation);
	meta = &so->cache->meta;
	is_bit = meta->elemtype == SV_ELEM_BIT;
	if (!so->started || (so->next == so->nresults && is_bit && so->batch_full))
	{
		MemoryContext old = MemoryContextSwitchTo(so->cxt);

		if (!so->started)
		{
			sv_check_scan_memory(meta);
			sv_choose_lists(so);
#if PG_VERSION_NUM >= 150000
			pgstat_count_index_scan(scan->indexRelation);
#endif
		}
		else if (so->nresults > 0)
		{
			/* continue the exact order after the last entry returned */
			so->have_last = true;
			so->last_score = so->results[so->nresults - 1].score;
			so->last_tid = so->results[so->nresults - 1].tid;
			pfree(so->results);
		}
		so->started = true;
		sv_scan_batch(scan);
		MemoryContextSwitchTo(old);
	}
	if (so->next >= so->nresults)
		return false;

	c = &so->results[so->next++];
	scan->xs_heaptid = c->tid;
	scan->xs_recheck = false;
	if (is_bit)
	{
		scan->xs_recheckorderby = false;
		if (so->strategy == 1)
			scan->xs_orderbyvals[0] = Float8GetDatum((double) c->score);
		else
			scan->xs_orderbyvals[0] = Int32GetDatum((int32) c->score);
	}
	else
	{
		/* a lower bound of every distance: the executor recomputes and orders exactly */
		scan->xs_recheckorderby = true;
		scan->xs_orderbyvals[0] = Float8GetDatum(-get_float8_infinity());
	}
	scan->xs_orderbynulls[0] = false;
	return true;
}

/* End a scan. */
void
sv_amendscan(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;

	MemoryContextDelete(so->cxt);
	pfree(scan->xs_orderbyvals);
	pfree(scan->xs_orderbynulls);
	pfree(so);
	scan->opaque = NULL;
}
