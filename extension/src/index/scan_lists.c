/*
 * scan_lists.c: the lists a batch reads (the window over the lists nearest the query), what earlier
 * batches took of each list, the walk along a list's chain of pages, and the work areas of a batch.
 */
#include "postgres.h"

#include "scan.h"

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

/* <q, c> of list's centroid: in float as the kernels compute it, in double for a wide list. */
static double
sv_query_dot(const SvScanOpaque *so, int list)
{
	const SvMetaData *meta = &so->cache->meta;
	const float *c = (const float *) so->cache->centroids + (Size) list * meta->code_bits;
	double		d = 0;

	if (!sv_list_wide(so, list))
		return (double) sv_kernels.dot(so->q, c, meta->code_bits);
	for (int i = 0; i < meta->code_bits; i++)
		d += (double) so->q[i] * (double) c[i];
	return d;
}

/* Order every list by its distance to the query; the first shrinkvec.probes form the first window. */
void
sv_choose_lists(SvScanOpaque *so)
{
	const SvMetaData *meta = &so->cache->meta;
	double	   *score;
	uint8	   *masked = NULL;

	so->nlists = meta->lists;
	so->nprobe = so->query_clamped ? meta->lists : so->settings.probes;
	so->order = palloc(sizeof(int) * meta->lists);
	so->window = 0;
	so->bound_state = palloc0(meta->lists);
	so->bound_score = palloc(sizeof(float) * meta->lists);
	so->bound_tid = palloc(sizeof(ItemPointerData) * meta->lists);
	if (meta->elemtype != SV_ELEM_BIT)
		so->list_qc = palloc(sizeof(double) * meta->lists);
	if (meta->lists == 1)
	{
		if (so->list_qc)
			so->list_qc[0] = sv_query_dot(so, 0);
		so->order[0] = 0;
		so->probe_lists = so->order;
		return;
	}
	score = palloc(sizeof(double) * meta->lists);
	if (meta->elemtype == SV_ELEM_BIT)
		masked = palloc(meta->code_bytes);
	for (int i = 0; i < meta->lists; i++)
	{
		if (meta->elemtype == SV_ELEM_BIT)
		{
			const uint8 *c = (const uint8 *) so->cache->centroids + (Size) i * meta->code_bytes;

			/* compare the query's prefix only */
			memcpy(masked, c, meta->code_bytes);
			for (int b = so->qbits; b < meta->code_bytes * 8; b++)
				masked[b / 8] &= (uint8) ~(0x80 >> (b % 8));
			score[i] = (float) sv_kernels.xor_popcount(masked, so->qcode, meta->code_bytes);
		}
		else
		{
			const float *c = (const float *) so->cache->centroids + (Size) i * meta->code_bits;
			double		dot = sv_query_dot(so, i);

			so->list_qc[i] = dot;
			if (meta->kind == SV_KIND_IP)
				score[i] = -dot;
			else if (!sv_norm2_safe(so->qnorm2))
				score[i] = sv_l2sq_double(so->q, c, meta->code_bits);	/* every list in double */
			else if (sv_list_wide(so, i))
				score[i] = sv_l2sq_double(so->q, c, meta->code_bits) -
					sv_l2sq_double(so->q, NULL, meta->code_bits);	/* |c|^2 - 2 <q, c>, as below */
			else
				score[i] = (double) (so->cache->centroid_norm2[i] - 2.0f * (float) dot);
		}
	}
	sv_order_lists(score, meta->lists, so->order);
	so->probe_lists = so->order;
	pfree(score);
}

/* Move the window to the next lists by centroid distance; false when every list was visited. */
bool
sv_next_window(SvScanOpaque *so)
{
	if (so->window + so->nprobe >= so->nlists)
		return false;
	so->window += so->nprobe;
	so->probe_lists = so->order + so->window;
	so->nprobe = Min(so->nprobe, so->nlists - so->window);
	return true;
}

/*
 * Widen the window to every list (vector opclasses of an IVF index, once rows wait in the pool): the
 * next batches take the best unread entries of the whole index by estimate, so the pool's frontier
 * bounds every unread entry, not only those of the probed lists.
 */
void
sv_widen_window(SvScanOpaque *so)
{
	if (so->nlists == 1 || (so->window == 0 && so->nprobe == so->nlists))
		return;
	so->window = 0;
	so->probe_lists = so->order;
	so->nprobe = so->nlists;
	so->batch_full = true;		/* the lists not probed yet are unread */
}

/*
 * After a batch of the window's lists: a batch cut at its k-th candidate took every entry of those
 * lists up to that candidate (a list's bound only moves forward); an uncut batch took all of them.
 */
static void
sv_advance_bounds(SvScanOpaque *so, const SvCandidate *last, bool cut)
{
	for (int p = 0; p < so->nprobe; p++)
	{
		int			list = so->probe_lists[p];

		if (so->bound_state[list] == SV_BOUND_ALL)
			continue;
		if (!cut)
			so->bound_state[list] = SV_BOUND_ALL;
		else if (sv_after_bound(so, list, last->score, (ItemPointer) &last->tid))
		{
			so->bound_state[list] = SV_BOUND_AT;
			so->bound_score[list] = last->score;
			so->bound_tid[list] = last->tid;
		}
	}
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

/* Start walking a chain at its first page. */
void
sv_chain_start(SvChain *c, Relation index, BlockNumber first)
{
	c->index = index;
	c->next = first;
	c->buf = InvalidBuffer;
	c->ahead = InvalidBuffer;
}

/*
 * The next page of the chain, share-locked (the previous one is released), or NULL at the end.  The
 * page after it is pinned and its header, special space and first codes start loading into cache
 * while this one is scanned.
 */
Page
sv_chain_next(SvChain *c)
{
	Page		page;

	if (BufferIsValid(c->buf))
		UnlockReleaseBuffer(c->buf);
	c->buf = InvalidBuffer;
	if (c->next == InvalidBlockNumber)
		return NULL;
	CHECK_FOR_INTERRUPTS();
	c->buf = BufferIsValid(c->ahead) ? c->ahead : sv_read_recent(c->index, c->next);
	c->ahead = InvalidBuffer;
	LockBuffer(c->buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(c->buf);
	if (PageIsNew(page) || SvPageGetOpaque(page)->flags != SV_PAGE_DATA)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("shrinkvec index \"%s\": block %u of a list is no longer a data page",
						RelationGetRelationName(c->index), BufferGetBlockNumber(c->buf)),
				 errdetail("A re-partition retired the pages this scan was reading and VACUUM recycled them: only a standby without hot_standby_feedback lets that happen."),
				 errhint("Run the query again; on a standby, set hot_standby_feedback = on.")));
	c->next = SvPageGetOpaque(page)->next;
	if (c->next != InvalidBlockNumber)
	{
		c->ahead = sv_read_recent(c->index, c->next);
		sv_prefetch_page(BufferGetPage(c->ahead));
	}
	return page;
}

/* The kernel sums of a page's n codes against the query's tables. */
void
sv_page_sums(const SvMetaData *meta, Page page, int n, const uint8 *tables, uint32 *sums)
{
	const uint8 *codes = sv_page_codes(page, meta);

	if (meta->lanes == SV_FS_LANES)
		sv_kernels.fs_scan(codes, (n + SV_FS_LANES - 1) / SV_FS_LANES, meta->code_bytes, tables, sums);
	else
		sv_fs_scan_lanes(codes, n, meta->lanes, meta->code_bytes, tables, sums);
}

/* Allocate a batch scan's work areas for k candidates. */
SvBatchWork
sv_batch_work(const SvMetaData *meta, int k)
{
	SvBatchWork bw;
	int			padded = (int) TYPEALIGN(SV_FS_LANES, meta->capacity);

	bw.heap = palloc(sizeof(SvCandidate) * k);
	bw.sums = palloc(sizeof(uint32) * padded);
	bw.idx = palloc(sizeof(uint32) * padded);
	bw.tables = palloc(SV_FS_TABLE_BYTES(meta->code_bytes));
	return bw;
}

/* Free a batch scan's work areas but its heap (the results). */
void
sv_batch_work_free(SvBatchWork *bw)
{
	pfree(bw->sums);
	pfree(bw->idx);
	pfree(bw->tables);
}

/* Sort a batch's top-k heap into results, best first, and note what it took of each list. */
void
sv_finish_batch(SvScanOpaque *so, SvCandidate *heap, int nheap, bool overflow)
{
	qsort(heap, nheap, sizeof(SvCandidate), sv_candidate_cmp);
	so->results = heap;
	so->nresults_est = nheap;
	so->next = 0;
	so->batch_full = overflow;
	so->unknown_tail = overflow && nheap > 0 && heap[nheap - 1].score == -INFINITY;
	sv_advance_bounds(so, nheap > 0 ? &heap[nheap - 1] : NULL, overflow && nheap > 0);
}
