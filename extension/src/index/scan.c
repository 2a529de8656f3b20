/*
 * index_scan.c: ordered scans of a shrinkvec index.
 *
 * A scan goes on while the executor wants rows: it works in batches, and a scan ends only when the
 * index is exhausted or shrinkvec.max_scan_tuples candidates were read (a NOTICE says so).  Batches:
 *
 * bit_hamming_ops: a batch is the best `k` entries by (Hamming distance, TID) of the probed lists after
 * the last entry of the previous batch, returned in that order with their exact distances.  A flat
 * index yields the complete exact order.
 *
 * vector opclasses: a batch is the best `k` entries by the asymmetric estimate (the float query against
 * the sign code, see index.h) after the previous batch's last.  The scan fetches each candidate's heap
 * tuple under the scan's snapshot (table_index_fetch_tuple), drops those it cannot see (dead entries never
 * take a place), computes the exact distance with the ORDER BY operator's own function, and returns the
 * batch in exact (distance, TID) order without xs_recheckorderby.  Within a batch the order is exact;
 * across batches it is relaxed (as pgvector's hnsw.iterative_scan = relaxed_order): a row of a later
 * batch can be nearer than one returned before it.  The first batch holds shrinkvec.shortlist entries,
 * each later one twice the previous (bounded by work_mem), so `ORDER BY ... LIMIT n` with n up to the
 * shortlist and no filter returns the exact order of the first batch.
 *
 * IVF: the first batch comes from the shrinkvec.probes lists nearest the query.  Vector opclasses: once
 * rows wait in the pool (the executor wants more than the first quarter of the first batch, as a filter
 * or a join makes it), the window widens to every list, so no unread entry of any list can be nearer
 * than the pool's frontier allows (what each list gave is kept per list, so nothing comes twice).
 * bit_hamming_ops: when the probed lists are exhausted the scan goes on with the next lists by centroid
 * distance (iterative probing), in exact order within each window.
 *
 * Refine codes (WITH (refine = B)): the first batch's candidates are scored again with their refine
 * codes (index.h), and only the best shrinkvec.rerank of them are fetched and scored exactly; the first
 * half of those goes out at once in exact order.  The others are deferred: if the executor wants more,
 * they are fetched into the pool before the scan goes on, exactly as without refine codes.
 *
 * A NULL query returns every entry (distance NULL), as pgvector's indexes do.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "svindex.h"
#include "kernels/kernels.h"
#include "shrinkvec.h"

/* One candidate: its score, heap TID and where its refine code is (indexes with refine codes). */
typedef struct SvCandidate
{
	float		score;			/* -Infinity: unknown (factors that overflowed float), never skipped */
	ItemPointerData tid;
	uint16		rslot;			/* slot on the refine page */
	BlockNumber rblk;			/* the refine page, or InvalidBlockNumber */
} SvCandidate;

/* One row of a vector batch: its exact distance, heap TID and estimate. */
typedef struct SvExact
{
	double		dist;
	ItemPointerData tid;
	bool		isnan;			/* NaN distances sort last, as in the executor's sort */
} SvExact;

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
	float		qnorm2;			/* |q|^2 in float (+Inf when it overflows) */
	uint8	   *qcode;			/* bit query, zero-padded to code_bytes */
	int			qbits;			/* bits of the bit query (<= code_bits) */
	int		   *order;			/* every list, nearest to the query first */
	int			nlists;
	double	   *list_qc;		/* vector opclasses: <q, c> of every list's centroid */
	int		   *probe_lists;	/* the window of lists batches come from: order + window */
	int			nprobe;			/* lists in the window */
	int			window;			/* its start in order */

	/* results of the current batch, best first */
	SvCandidate *results;		/* bit opclasses */
	SvExact    *exact;			/* vector opclasses */
	int			exact_cap;
	int			nresults;		/* rows of the batch to return */
	int			nresults_est;	/* candidates of the batch by estimate (results) */
	int			ndirect;		/* vector: rows of the first batch returned without waiting */
	SvCandidate *deferred;		/* refine codes: first-batch candidates whose rows were not read (yet) */
	int			ndeferred;
	int			next;
	int			batch_size;		/* k of the current batch */
	bool		batch_full;		/* the batch was cut at k: more entries exist in the window */
	bool		unknown_tail;	/* ... and cut among entries of unknown estimate: more of them may be unread */
	bool		unknown_refine; /* refine codes: a kept candidate's refine estimate is unknown */

	/*
	 * What was read of each list (indexed by list number): entries up to (bound_score, bound_tid) in
	 * (score, TID) order went into earlier batches.  A list's bound only grows, so a window that takes in
	 * lists read before (IVF widened to every list, below) skips exactly the entries already returned.
	 */
	uint8	   *bound_state;	/* SV_BOUND_* */
	float	   *bound_score;
	ItemPointerData *bound_tid;
	int64		scanned;		/* candidates read (for shrinkvec.max_scan_tuples) */
	bool		done;

	/*
	 * vector opclasses after the first batch: fetched rows wait in a pool (a min-heap by exact distance)
	 * until no unread entry of the window can be nearer: an unread entry's estimate is at least
	 * `frontier`, and estimates have exceeded exact distances by at most `overshoot` so far.
	 */
	bool		pooling;
	SvExact    *pool;
	int			pool_n;
	int			pool_cap;
	double		frontier;
	double		over_n;			/* est - exact over the fetched rows: count, sum, sum of squares */
	double		over_sum;
	double		over_sum2;

	/* vector opclasses: the heap rows of candidates (in parent: they live until the scan ends) */
	MemoryContext parent;
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	IndexInfo  *index_info;
	EState	   *estate;

	/* a NULL query: every entry, list by list */
	bool		null_query;
	int			null_list;
	BlockNumber null_blk;
	ItemPointerData *null_tids;
	int			null_n;
	int			null_pos;
} SvScanOpaque;

/* What was read of a list (SvScanOpaque.bound_state). */
#define SV_BOUND_NONE 0			/* nothing yet */
#define SV_BOUND_AT 1			/* entries up to bound_score/bound_tid */
#define SV_BOUND_ALL 2			/* every entry */

/* Is candidate a worse than b: larger score, or the same score and a later TID? */
static inline bool
sv_worse(const SvCandidate *a, const SvCandidate *b)
{
	if (a->score != b->score)
		return a->score > b->score;
	return ItemPointerCompare((ItemPointer) &a->tid, (ItemPointer) &b->tid) > 0;
}

/* Exchange candidates i and j of a heap. */
static inline void
sv_cand_swap(SvCandidate *heap, size_t i, size_t j)
{
	SvCandidate t = heap[i];

	heap[i] = heap[j];
	heap[j] = t;
}

#define TOPK_PREFIX sv_cand
#define TOPK_HEAP SvCandidate *
#define TOPK_WORSE(h, i, j) sv_worse(&(h)[i], &(h)[j])
#define TOPK_SWAP(h, i, j) sv_cand_swap(h, i, j)
#include "kernels/topk_heap.h"

/* Offer a candidate to a bounded max-heap of capacity k holding *n entries. */
static inline void
sv_offer(SvCandidate *heap, int *n, int k, float score, ItemPointer tid, BlockNumber rblk, int rslot,
		 bool *overflow)
{
	SvCandidate c;

	c.score = score;
	c.tid = *tid;
	c.rblk = rblk;
	c.rslot = (uint16) rslot;
	if (*n < k)
	{
		heap[*n] = c;
		sv_cand_sift_up(heap, (*n)++);
		return;
	}
	*overflow = true;
	if (sv_worse(&c, &heap[0]))
		return;
	heap[0] = c;
	sv_cand_sift_down(heap, *n, 0);
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
	double		score;
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

/*
 * Does list's arithmetic with the query need double (SV_SAFE_NORM2, index.h): a query or centroid whose
 * squared norm float arithmetic could overflow?  Such a list is scanned in its "wide" form: estimates in
 * double from weights scaled by a power of two, every entry scored (no float bound to skip by).
 */
static inline bool
sv_list_wide(const SvScanOpaque *so, int list)
{
	return !(so->qnorm2 <= SV_SAFE_NORM2) || !(so->cache->centroid_norm2[list] <= SV_SAFE_NORM2);
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
static void
sv_choose_lists(SvScanOpaque *so)
{
	const SvMetaData *meta = &so->cache->meta;
	SvProbe    *probes;
	uint8	   *masked = NULL;

	so->nlists = meta->lists;
	so->nprobe = sv_effective_probes(meta->lists);
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
			double		dot = sv_query_dot(so, i);

			so->list_qc[i] = dot;
			if (meta->kind == SV_KIND_IP)
				probes[i].score = -dot;
			else if (!sv_norm2_safe(so->qnorm2))
				probes[i].score = sv_l2sq_double(so->q, c, meta->code_bits);	/* every list in double */
			else if (sv_list_wide(so, i))
				probes[i].score = sv_l2sq_double(so->q, c, meta->code_bits) -
					sv_l2sq_double(so->q, NULL, meta->code_bits);	/* |c|^2 - 2 <q, c>, as below */
			else
				probes[i].score = (double) (so->cache->centroid_norm2[i] - 2.0f * (float) dot);
		}
	}
	qsort(probes, meta->lists, sizeof(SvProbe), sv_probe_cmp);
	for (int i = 0; i < meta->lists; i++)
		so->order[i] = probes[i].list;
	so->probe_lists = so->order;
	pfree(probes);
}

/* Move the window to the next lists by centroid distance; false when every list was visited. */
static bool
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
static void
sv_widen_window(SvScanOpaque *so)
{
	if (so->nlists == 1 || (so->window == 0 && so->nprobe == so->nlists))
		return;
	so->window = 0;
	so->probe_lists = so->order;
	so->nprobe = so->nlists;
	so->batch_full = true;		/* the lists not probed yet are unread */
}

/* Is (score, tid) of an entry of list after what earlier batches took of that list? */
static inline bool
sv_after_bound(const SvScanOpaque *so, int list, float score, ItemPointer tid)
{
	if (so->bound_state[list] == SV_BOUND_NONE)
		return true;
	if (score != so->bound_score[list])
		return score > so->bound_score[list];
	return ItemPointerCompare(tid, &so->bound_tid[list]) > 0;
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

/* A walk along one list's chain of data pages, the next page pinned and prefetched ahead. */
typedef struct SvChain
{
	Relation	index;
	BlockNumber next;			/* the page after the current one */
	Buffer		buf;			/* the current page, share-locked */
	Buffer		ahead;			/* the next page, pinned */
} SvChain;

/* Start walking a chain at its first page. */
static void
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
static Page
sv_chain_next(SvChain *c)
{
	Page		page;

	if (BufferIsValid(c->buf))
		UnlockReleaseBuffer(c->buf);
	c->buf = InvalidBuffer;
	if (c->next == InvalidBlockNumber)
		return NULL;
	CHECK_FOR_INTERRUPTS();
	c->buf = BufferIsValid(c->ahead) ? c->ahead : ReadBuffer(c->index, c->next);
	c->ahead = InvalidBuffer;
	LockBuffer(c->buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(c->buf);
	c->next = SvPageGetOpaque(page)->next;
	if (c->next != InvalidBlockNumber)
	{
		c->ahead = ReadBuffer(c->index, c->next);
		sv_prefetch_page(BufferGetPage(c->ahead));
	}
	return page;
}

/* The kernel sums of a page's n codes against the query's tables. */
static void
sv_page_sums(const SvMetaData *meta, Page page, int n, const uint8 *tables, uint32 *sums)
{
	const uint8 *codes = sv_page_codes(page, meta);

	if (meta->lanes == SV_FS_LANES)
		sv_kernels.fs_scan(codes, (n + SV_FS_LANES - 1) / SV_FS_LANES, meta->code_bytes, tables, sums);
	else
		sv_fs_scan_lanes(codes, n, meta->lanes, meta->code_bytes, tables, sums);
}

/* What a batch scan works with: the top-k heap, a page's kernel sums and selected entries, the tables. */
typedef struct SvBatchWork
{
	SvCandidate *heap;			/* k candidates; becomes the batch's results */
	uint32	   *sums;
	uint32	   *idx;
	uint8	   *tables;
} SvBatchWork;

/* Allocate a batch scan's work areas for k candidates. */
static SvBatchWork
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
static void
sv_batch_work_free(SvBatchWork *bw)
{
	pfree(bw->sums);
	pfree(bw->idx);
	pfree(bw->tables);
}

/* Sort a batch's top-k heap into results, best first, and note what it took of each list. */
static void
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

/*
 * bit_hamming_ops: the best k entries of the window's lists by exact Hamming distance (the query's
 * prefix), after what earlier batches took.  Each page goes through the nibble-table kernel with
 * Hamming tables and a SIMD threshold test against the current k-th best; only the entries that pass
 * reach the top-k heap.
 */
static void
sv_scan_bits(IndexScanDesc scan, int k)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;
	SvBatchWork bw = sv_batch_work(meta, k);
	SvCandidate *heap = bw.heap;
	int			nheap = 0;
	bool		overflow = false;

	sv_fs_tables_hamming(so->qcode, so->qbits, meta->code_bytes, bw.tables);
	for (int p = 0; p < so->nprobe; p++)
	{
		int			list = so->probe_lists[p];
		SvChain		chain;
		Page		page;

		if (so->bound_state[list] == SV_BOUND_ALL)
			continue;			/* every entry went into earlier batches */
		sv_chain_start(&chain, scan->indexRelation, sv_read_list(scan->indexRelation, meta, list).first);
		while ((page = sv_chain_next(&chain)) != NULL)
		{
			int			n = SvPageGetOpaque(page)->count;
			ItemPointerData *tids = sv_page_tids(page, meta);
			uint32		tau;
			int			m;

			if (n == 0)
				continue;
			sv_page_sums(meta, page, n, bw.tables, bw.sums);
			tau = nheap == k ? (uint32) heap[0].score : PG_UINT32_MAX;
			m = (int) sv_kernels.fs_select_u32(bw.sums, n, tau, bw.idx);
			if (nheap == k && m < n)
				overflow = true;
			for (int j = 0; j < m; j++)
			{
				int			i = bw.idx[j];
				float		score = (float) bw.sums[i];

				if (sv_after_bound(so, list, score, &tids[i]))
					sv_offer(heap, &nheap, k, score, &tids[i], InvalidBlockNumber, 0, &overflow);
			}
		}
	}
	sv_finish_batch(so, heap, nheap, overflow);
	sv_batch_work_free(&bw);
}

/* The power of two that brings the largest |w_i| to about 2^40, so float sums over w cannot overflow. */
static double
sv_weight_scale(double maxabs)
{
	int			e;

	if (!(maxabs > 0) || !isfinite(maxabs))
		return 1.0;
	(void) frexp(maxabs, &e);
	return ldexp(1.0, 40 - e);
}

/*
 * A candidate's score from an estimate computed in double: saturated at +-FLT_MAX (estimates beyond it
 * tie, then go by TID), -Infinity kept (unknown), NaN made unknown.  Candidates stay 16 bytes.
 */
static inline float
sv_score(double est)
{
	if (isnan(est))
		return -INFINITY;
	if (est > FLT_MAX)
		return FLT_MAX;
	if (est < -FLT_MAX && est != -INFINITY)
		return -FLT_MAX;
	return (float) est;
}

/*
 * Vector opclasses: the best k entries of the window's lists by the asymmetric estimate (index.h),
 * after what earlier batches took.  The kernel sums give the inner product of the code's signs with
 * the quantized query (or query - centroid); the SIMD threshold test uses a lower bound of each
 * entry's score (the quantization error is at most err_l1), so an entry is skipped only when its exact
 * score cannot beat the k-th best; the entries that pass are scored exactly in float.  The shortlist
 * is that of exact float scoring.
 *
 * Extreme values (finite floats whose squares overflow): an entry whose stored factors overflowed (alpha
 * or r2 infinite) has an unknown estimate, -Infinity: it is never skipped and always read (its exact
 * distance decides).  The kernel skips only entries whose bound is a finite number above the k-th best.
 * An estimate that overflows float is recomputed in double.  A wide list (sv_list_wide) is scored in
 * double from weights scaled by a power of two, every entry, without the kernel's test.
 */
static void
sv_scan_vectors(IndexScanDesc scan, int k)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;
	SvBatchWork bw = sv_batch_work(meta, k);
	SvCandidate *heap = bw.heap;
	int			nheap = 0;
	bool		overflow = false;
	uint8	   *code = palloc(meta->code_bytes);
	float	   *w = palloc(sizeof(float) * meta->code_bits);
	float	   *lut = NULL;		/* per-byte float tables of w for exact scores (cosine, IP) */
	SvFsQuery	fq = {0};
	float		wsum = 0,
				wabs = 0,
				qnorm2 = so->qnorm2;
	double		qscale = 1.0;	/* non-L2: w = q * qscale */
	int32		soff = 2 * SV_FS_BIAS * meta->code_bytes;
	bool		is_l2 = meta->kind == SV_KIND_L2;
	int			rcap = meta->refine_bits > 0 ? meta->refine_capacity : 0;

	if (!is_l2)
	{
		/* one set of tables serves every list: the weights are the query itself (scaled when large) */
		if (!(qnorm2 <= SV_SAFE_NORM2))
		{
			double		maxabs = 0;

			for (int d = 0; d < meta->code_bits; d++)
				maxabs = Max(maxabs, fabs((double) so->q[d]));
			qscale = sv_weight_scale(maxabs);
		}
		for (int d = 0; d < meta->code_bits; d++)
			w[d] = (float) ((double) so->q[d] * qscale);
		sv_fs_tables_ip(w, meta->code_bits, meta->code_bytes, bw.tables, &fq);
		wsum = sv_kernels.sum(w, meta->code_bits);
		for (int d = 0; d < meta->code_bits; d++)
			wabs += fabsf(w[d]);
		lut = palloc(sizeof(float) * 256 * meta->code_bytes);
		sv_lut_build(w, meta->code_bits, meta->code_bytes, lut);
	}

	for (int p = 0; p < so->nprobe; p++)
	{
		int			list = so->probe_lists[p];
		const float *c = (const float *) so->cache->centroids + (Size) list * meta->code_bits;
		bool		wide = sv_list_wide(so, list);
		float		qc,
					base,
					f = -1.0f,
					margin,
					c0,
					c1;
		double		based = 0,	/* base in double (wide lists) */
					wscale = qscale;	/* w = (q - c or q) * wscale */
		SvChain		chain;
		Page		page;

		if (so->bound_state[list] == SV_BOUND_ALL)
			continue;			/* every entry went into earlier batches */
		qc = (float) so->list_qc[list];
		if (is_l2)
		{
			if (wide)
			{
				double		maxabs = 0;

				based = sv_l2sq_double(so->q, c, meta->code_bits);
				for (int d = 0; d < meta->code_bits; d++)
					maxabs = Max(maxabs, fabs((double) so->q[d] - (double) c[d]));
				wscale = sv_weight_scale(maxabs);
				for (int d = 0; d < meta->code_bits; d++)
					w[d] = (float) (((double) so->q[d] - (double) c[d]) * wscale);
			}
			else
			{
				for (int d = 0; d < meta->code_bits; d++)
					w[d] = so->q[d] - c[d];
				wscale = 1.0;
			}
			sv_fs_tables_ip(w, meta->code_bits, meta->code_bytes, bw.tables, &fq);
			wsum = sv_kernels.sum(w, meta->code_bits);
			wabs = 0;
			for (int d = 0; d < meta->code_bits; d++)
				wabs += fabsf(w[d]);
			base = qnorm2 + so->cache->centroid_norm2[list] - 2.0f * qc;
			f = -2.0f;
		}
		else if (meta->kind == SV_KIND_IP)
		{
			base = -qc;
			based = -so->list_qc[list];
		}
		else
		{
			base = 1.0f - qc;
			based = 1.0 - so->list_qc[list];
		}
		if (!wide)
			based = base;

		/*
		 * <w, s> <= delta * (2 (S - soff) - vsum) + err_l1 (kernels.h); the margin also covers float
		 * rounding of the bound and of the exact scores (relative to sum |w_i|).
		 */
		margin = fq.err_l1 * 1.001f + 1e-4f * wabs + 1e-30f;
		c1 = 2.0f * fq.delta;
		c0 = margin - fq.delta * (float) fq.vsum;

		sv_chain_start(&chain, scan->indexRelation, sv_read_list(scan->indexRelation, meta, list).first);
		while ((page = sv_chain_next(&chain)) != NULL)
		{
			int			n = SvPageGetOpaque(page)->count;
			ItemPointerData *tids = sv_page_tids(page, meta);
			const uint8 *codes = sv_page_codes(page, meta);
			const float *alpha = sv_page_alpha(page, meta);
			const float *r2 = sv_page_r2(page, meta);
			const BlockNumber *rblocks = sv_page_refine_blocks(page);
			float		tau;
			int			m;

			if (n == 0)
				continue;
			if (wide)
			{
				/* every entry is scored in double */
				for (int i = 0; i < n; i++)
					bw.idx[i] = i;
				m = n;
			}
			else
			{
				sv_page_sums(meta, page, n, bw.tables, bw.sums);
				tau = nheap == k ? heap[0].score : get_float4_infinity();
				/* a hair above the k-th best, so float rounding never drops a tie */
				if (nheap == k)
					tau += 1e-6f * fabsf(tau) + 1e-30f;
				m = (int) sv_kernels.fs_select(bw.sums, n, soff, alpha, is_l2 ? r2 : NULL, base, f, c0, c1, tau,
											   bw.idx);
				if (nheap == k && m < n)
					overflow = true;	/* entries beyond the k-th best exist (or were taken before) */
			}

			/*
			 * The k-th best improves as the page's entries are scored: test each entry's bound again
			 * against it before scoring it exactly (a bound that is not a finite number never skips).
			 */
			for (int j = 0; j < m; j++)
			{
				int			i = bw.idx[j];
				float		s,
							score;
				double		est;

				if (!wide && nheap == k)
				{
					float		lb = sv_fs_bound(bw.sums[i], soff, alpha[i], is_l2 ? r2[i] : 0.0f, base, f, c0, c1);

					if (isfinite(lb) && lb > heap[0].score + 1e-6f * fabsf(heap[0].score) + 1e-30f)
					{
						overflow = true;
						continue;
					}
				}
				if (lut)
					s = sv_lut_score_blocked(codes, meta->lanes, meta->code_bytes, i, lut);
				else
				{
					sv_page_get_code(page, meta, i, code);
					s = sv_kernels.masked_sum(w, code, meta->code_bits);
				}
				if (unlikely(!isfinite(alpha[i]) || (is_l2 && !isfinite(r2[i]))))
					est = -INFINITY;	/* unknown: the row is read, its exact distance decides */
				else
				{
					float		e = is_l2 ? base + r2[i] - 2.0f * alpha[i] * (2.0f * s - wsum)
						: base - alpha[i] * (2.0f * s - wsum);

					if (!wide && isfinite(e))
						est = e;
					else
					{
						/* the float form overflowed (or the list is wide): in double, weights unscaled */
						double		ws = (2.0 * (double) s - (double) wsum) / wscale;

						est = is_l2 ? based + (double) r2[i] - 2.0 * (double) alpha[i] * ws
							: based - (double) alpha[i] * ws;
						if (isnan(est))
							est = -INFINITY;
					}
				}
				score = sv_score(est);
				if (sv_after_bound(so, list, score, &tids[i]))
					sv_offer(heap, &nheap, k, score, &tids[i],
							 rcap > 0 ? rblocks[i / rcap] : InvalidBlockNumber, rcap > 0 ? i % rcap : 0,
							 &overflow);
			}
		}
	}
	sv_finish_batch(so, heap, nheap, overflow);
	sv_batch_work_free(&bw);
	pfree(code);
	pfree(w);
	if (lut)
		pfree(lut);
}

/* Scan the window's lists once: the best k candidates after what earlier batches took, in results. */
static void
sv_scan_batch(IndexScanDesc scan, int k)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;

	if (so->cache->meta.elemtype == SV_ELEM_BIT)
		sv_scan_bits(scan, k);
	else
		sv_scan_vectors(scan, k);
}

/* Bytes a batch keeps per candidate. */
static Size
sv_candidate_bytes(const SvMetaData *meta)
{
	return meta->elemtype == SV_ELEM_BIT ? sizeof(SvCandidate) : sizeof(SvCandidate) + sizeof(SvExact);
}

/*
 * Refuse a shortlist whose memory would exceed work_mem: a batch holds its candidates (and, for a vector
 * opclass, their exact distances).  Later batches grow only as far as work_mem allows.
 */
static void
sv_check_scan_memory(const SvMetaData *meta)
{
	Size		need = sv_candidate_bytes(meta) * (Size) sv_shortlist;

	if (need > (Size) work_mem * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("shrinkvec.shortlist %d needs about %zu kB for its candidates, more than work_mem (%d kB)",
						sv_shortlist, need / 1024, work_mem),
				 errhint("Lower shrinkvec.shortlist or raise work_mem.")));
}

/* The size of the batch after one of k candidates: twice as large, as far as work_mem allows. */
static int
sv_next_batch_size(const SvMetaData *meta, int k)
{
	Size		most = (Size) work_mem * 1024 / sv_candidate_bytes(meta);
	Size		next = (Size) k * 2;

	if (next > most)
		next = Max(most, (Size) k);
	return (int) Min(next, (Size) SV_INDEX_MAX_SHORTLIST);
}

/* qsort comparator of exact rows: smaller distance first, NaN last, then TID. */
static int
sv_exact_cmp(const void *a, const void *b)
{
	const SvExact *x = a,
			   *y = b;

	if (x->isnan != y->isnan)
		return x->isnan ? 1 : -1;
	if (!x->isnan && x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return ItemPointerCompare((ItemPointer) &x->tid, (ItemPointer) &y->tid);
}

/* Set up what the scan needs to read candidates' heap rows (once per scan). */
static void
sv_begin_fetch(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	MemoryContext old;

	if (so->fetch != NULL)
		return;
	if (scan->heapRelation == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a shrinkvec index scan needs its table")));
	old = MemoryContextSwitchTo(so->parent);
	so->fetch = table_index_fetch_begin(scan->heapRelation);
	so->slot = table_slot_create(scan->heapRelation, NULL);
	so->index_info = BuildIndexInfo(scan->indexRelation);
	so->estate = CreateExecutorState();
	MemoryContextSwitchTo(old);
}

/* A candidate's estimate in the units of the ORDER BY operator (L2 scores are squared distances). */
static inline double
sv_estimate_distance(const SvScanOpaque *so, float score)
{
	if (score == -INFINITY)
		return score;			/* unknown: nothing is known to be beyond it */
	if (so->cache->meta.kind == SV_KIND_L2)
		return sqrt(Max((double) score, 0.0));
	return (double) score;
}

/*
 * Add the visible ones of n estimate-ordered candidates to the vector batch as exact rows: fetch each
 * heap row visible to the scan's snapshot (the root TID of a HOT chain finds the visible version), drop
 * the others, compute the indexed value (FormIndexDatum: a column or an expression) and its distance
 * with the ORDER BY operator's own function.  The caller sorts.
 */
static void
sv_add_exact(IndexScanDesc scan, const SvCandidate *cands, int n)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	ScanKey		orderby = &scan->orderByData[0];
	ExprContext *econtext;

	sv_begin_fetch(scan);
	econtext = GetPerTupleExprContext(so->estate);
	if (so->exact == NULL || so->nresults + n > so->exact_cap)
	{
		int			cap = Max(so->nresults + n, so->batch_size);

		so->exact = so->exact == NULL ? palloc(sizeof(SvExact) * cap) : repalloc(so->exact, sizeof(SvExact) * cap);
		so->exact_cap = cap;
	}
	for (int i = 0; i < n; i++)
	{
		bool		call_again = false,
					all_dead = false;
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];
		double		d;
		SvExact    *e;

		CHECK_FOR_INTERRUPTS();
		if (!table_index_fetch_tuple(so->fetch, (ItemPointer) &cands[i].tid, scan->xs_snapshot, so->slot,
									 &call_again, &all_dead))
			continue;
		ResetPerTupleExprContext(so->estate);
		econtext->ecxt_scantuple = so->slot;
		FormIndexDatum(so->index_info, so->slot, so->estate, values, isnull);
		if (isnull[0])
			continue;
		d = DatumGetFloat8(FunctionCall2Coll(&orderby->sk_func, orderby->sk_collation, values[0],
											 orderby->sk_argument));
		e = &so->exact[so->nresults++];
		e->dist = d;
		e->isnan = isnan(d);
		e->tid = cands[i].tid;
		if (!e->isnan)
		{
			double		over = sv_estimate_distance(so, cands[i].score) - d;

			if (!isfinite(over))
				continue;		/* an unknown estimate or an infinite distance says nothing of the error */

			so->over_n += 1;
			so->over_sum += over;
			so->over_sum2 += over * over;
		}
	}
	ExecClearTuple(so->slot);
}

/* The inner product of q with a refine code's values u (code_bits dims of refine_bits each). */
static float
sv_refine_dot(const SvMetaData *meta, const float *q, const uint8 *code, float *u)
{
	int			dim = meta->code_bits;

	switch (meta->refine_bits)
	{
		case 8:
			for (int i = 0; i < dim; i++)
				u[i] = (float) code[i];
			break;
		case 4:
			for (int i = 0; i < dim; i++)
				u[i] = (float) ((code[i >> 1] >> (i & 1 ? 0 : 4)) & 0x0F);
			break;
		default:
			for (int i = 0; i < dim; i++)
				u[i] = (float) ((code[i >> 2] >> (6 - 2 * (i & 3))) & 0x03);
			break;
	}
	return sv_kernels.dot(q, u, dim);
}

/* A candidate's refine estimate, for sorting the batch by it. */
typedef struct SvRefined
{
	double		est;
	int			idx;			/* in the batch's results */
} SvRefined;

/* qsort comparator of refine estimates: smaller first, then the earlier candidate of the batch. */
static int
sv_refined_cmp(const void *a, const void *b)
{
	const SvRefined *x = a,
			   *y = b;

	if (x->est != y->est)
		return x->est < y->est ? -1 : 1;
	return x->idx - y->idx;
}

/* qsort comparator of candidates by refine page and slot, so each refine page is read once. */
static int
sv_refine_loc_cmp(const void *a, const void *b)
{
	const SvCandidate *x = *(SvCandidate *const *) a,
			   *y = *(SvCandidate *const *) b;

	if (x->rblk != y->rblk)
		return x->rblk < y->rblk ? -1 : 1;
	return (int) x->rslot - (int) y->rslot;
}

/*
 * The funnel's middle step: score the batch's candidates with their refine codes and put the best
 * `keep` first in results; the others go to so->deferred (their rows are read only if the executor
 * wants more rows than the first batch gives).  A candidate whose refine slot no longer holds its TID
 * (VACUUM moved entries since its data page was read) counts as the best: it is never dropped wrongly.
 */
static void
sv_refine_select(IndexScanDesc scan, int keep)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;
	int			n = so->nresults_est;
	SvRefined  *est = palloc(sizeof(SvRefined) * n);
	SvCandidate **byloc = palloc(sizeof(SvCandidate *) * n);
	SvCandidate *sorted = palloc(sizeof(SvCandidate) * n);
	float	   *u = palloc(sizeof(float) * meta->code_bits);
	double		qsum = 0,
				qn2 = 0;
	Buffer		buf = InvalidBuffer;
	Page		page = NULL;

	bool		wide = !(so->qnorm2 <= SV_SAFE_NORM2);

	if (wide)
		for (int d = 0; d < meta->code_bits; d++)
		{
			qsum += so->q[d];
			qn2 += (double) so->q[d] * so->q[d];
		}
	else
	{
		qsum = sv_kernels.sum(so->q, meta->code_bits);
		qn2 = so->qnorm2;
	}
	for (int i = 0; i < n; i++)
		byloc[i] = &so->results[i];
	qsort(byloc, n, sizeof(SvCandidate *), sv_refine_loc_cmp);
	for (int j = 0; j < n; j++)
	{
		const SvCandidate *c = byloc[j];
		int			i = (int) (c - so->results);
		double		e = -INFINITY;

		if (c->rblk != InvalidBlockNumber)
		{
			if (!BufferIsValid(buf) || BufferGetBlockNumber(buf) != c->rblk)
			{
				if (BufferIsValid(buf))
					UnlockReleaseBuffer(buf);
				buf = ReadBuffer(scan->indexRelation, c->rblk);
				LockBuffer(buf, BUFFER_LOCK_SHARE);
				page = BufferGetPage(buf);
			}
			if (SvPageGetOpaque(page)->flags == SV_PAGE_REFINE &&
				ItemPointerEquals(&sv_refine_tids(page, meta)[c->rslot], (ItemPointer) &c->tid))
			{
				int			list = (int) SvPageGetOpaque(page)->list;
				float		lo = sv_refine_lo(page, meta)[c->rslot],
							step = sv_refine_step(page, meta)[c->rslot],
							norm2 = sv_refine_norm2(page, meta)[c->rslot];

				/* factors that overflowed float leave the estimate unknown: the row is read first */
				if (isfinite(lo) && isfinite(step) && isfinite(norm2) && (int) list < meta->lists)
				{
					double		dot = sv_refine_dot(meta, so->q,
													 sv_refine_codes(page, meta) + (Size) c->rslot * meta->refine_bytes, u);
					double		qx = so->list_qc[list] + (double) lo * qsum + (double) step * dot;

					if (wide)
					{
						/* a query this large overflows the float dot product */
						dot = 0;
						for (int d = 0; d < meta->code_bits; d++)
							dot += (double) so->q[d] * u[d];
						qx = so->list_qc[list] + (double) lo * qsum + (double) step * dot;
					}
					if (meta->kind == SV_KIND_L2)
						e = qn2 + (double) norm2 - 2.0 * qx;
					else if (meta->kind == SV_KIND_IP)
						e = -qx;
					else
						e = 1.0 - qx;
					if (isnan(e))
						e = -INFINITY;
				}
			}
		}
		est[i].est = e;
		est[i].idx = i;
	}
	if (BufferIsValid(buf))
		UnlockReleaseBuffer(buf);
	qsort(est, n, sizeof(SvRefined), sv_refined_cmp);
	/* unknown estimates sort first: they may have pushed nearer rows into the deferred ones */
	so->unknown_refine = keep < n && keep > 0 && est[0].est == -INFINITY;
	for (int i = 0; i < n; i++)
		sorted[i] = so->results[est[i].idx];
	memcpy(so->results, sorted, sizeof(SvCandidate) * n);
	so->ndeferred = n - keep;
	so->deferred = MemoryContextAlloc(so->cxt, sizeof(SvCandidate) * Max(so->ndeferred, 1));
	memcpy(so->deferred, so->results + keep, sizeof(SvCandidate) * so->ndeferred);
	pfree(est);
	pfree(byloc);
	pfree(sorted);
	pfree(u);
}

/*
 * ORDER BY keys after the first (ORDER BY b <~> q1, b <^> q2): the scan orders by the first key only.
 * It reports the first key's exact value and a lower bound for each later key (-Infinity, or the
 * smallest integer for <^>) with xs_recheckorderby, so the executor computes the later keys and
 * reorders rows that tie on the first key; with one key nothing needs a recheck.
 */
static void
sv_report_other_keys(IndexScanDesc scan)
{
	scan->xs_recheckorderby = scan->numberOfOrderBys > 1;
	for (int i = 1; i < scan->numberOfOrderBys; i++)
	{
		if (scan->orderByData[i].sk_strategy == SV_STRATEGY_PREFIX_HAMMING)
			scan->xs_orderbyvals[i] = Int32GetDatum(PG_INT32_MIN);
		else
			scan->xs_orderbyvals[i] = Float8GetDatum(-get_float8_infinity());
		scan->xs_orderbynulls[i] = false;
	}
}

/* The next entry of a NULL query: every entry of every list, page by page (false at the end). */
static bool
sv_next_null(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;

	while (so->null_pos >= so->null_n)
	{
		Buffer		buf;
		Page		page;

		if (so->null_blk == InvalidBlockNumber)
		{
			if (so->null_list >= meta->lists)
				return false;
			so->null_blk = sv_read_list(scan->indexRelation, meta, so->null_list++).first;
			continue;
		}
		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(scan->indexRelation, so->null_blk);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		so->null_n = SvPageGetOpaque(page)->count;
		if (so->null_tids == NULL)
			so->null_tids = MemoryContextAlloc(so->cxt, sizeof(ItemPointerData) * meta->capacity);
		memcpy(so->null_tids, sv_page_tids(page, meta), sizeof(ItemPointerData) * so->null_n);
		so->null_blk = SvPageGetOpaque(page)->next;
		so->null_pos = 0;
		UnlockReleaseBuffer(buf);
	}
	scan->xs_heaptid = so->null_tids[so->null_pos++];
	scan->xs_recheck = false;
	sv_report_other_keys(scan);
	scan->xs_orderbynulls[0] = true;
	return true;
}

/* Start a scan. */
IndexScanDesc
sv_ambeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	SvScanOpaque *so = palloc0(sizeof(SvScanOpaque));

	so->cxt = AllocSetContextCreate(CurrentMemoryContext, "shrinkvec scan", ALLOCSET_DEFAULT_SIZES);
	so->parent = CurrentMemoryContext;
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
		VarBit	   *b = sv_check_varbit(DatumGetVarBitP(value));
		int			len = VARBITLEN(b);

		if (len > meta->code_bits || len < 1)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_LENGTH_MISMATCH),
					 errmsg("query has %d bits, the index stores %d", len, meta->code_bits),
					 errhint("A query may be a prefix of the indexed codes, not longer.")));
		if (len < meta->code_bits && so->strategy == SV_STRATEGY_DISTANCE)
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
			SvVector   *v = sv_check_vector((SvVector *) PG_DETOAST_DATUM(value));

			dims = v->dim;
			full = v->x;
		}
		else
		{
			SvHalfVec  *v = sv_check_halfvec((SvHalfVec *) PG_DETOAST_DATUM(value));

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

			if (!isfinite(norm))
			{
				/* |q|^2 overflows float: the norm in double */
				double		n2 = 0;

				for (int i = 0; i < dims; i++)
					n2 += (double) full[i] * full[i];
				norm = (float) sqrt(n2);
			}
			if (norm > 0)
				for (int i = 0; i < meta->code_bits; i++)
					so->q[i] /= norm;
		}
		so->qnorm2 = sv_kernels.dot(so->q, so->q, meta->code_bits);
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
	so->done = false;
	so->results = NULL;
	so->exact = NULL;
	so->nresults = so->next = 0;
	so->scanned = 0;
	so->pooling = false;
	so->pool = NULL;
	so->pool_n = so->pool_cap = 0;
	so->frontier = 0;
	so->deferred = NULL;
	so->ndeferred = 0;
	so->list_qc = NULL;
	so->over_n = so->over_sum = so->over_sum2 = 0;
	so->null_query = false;
	so->null_list = 0;
	so->null_blk = InvalidBlockNumber;
	so->null_tids = NULL;
	so->null_n = so->null_pos = 0;
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	if (scan->numberOfOrderBys == 0)
		return;					/* no ORDER BY: the planner never asks (the scan returns nothing) */
	if (scan->orderByData[0].sk_flags & SK_ISNULL)
	{
		so->null_query = true;	/* every row, with a NULL distance */
		return;
	}
	old = MemoryContextSwitchTo(so->cxt);
	sv_set_query(so, &scan->orderByData[0]);
	MemoryContextSwitchTo(old);
	so->have_query = true;
}

/* Is exact row a before b: smaller distance (NaN last), then TID? */
static inline bool
sv_exact_before(const SvExact *a, const SvExact *b)
{
	return sv_exact_cmp(a, b) < 0;
}

/* Push a row onto the pool (a binary min-heap). */
static void
sv_pool_push(SvScanOpaque *so, const SvExact *e)
{
	int			i;

	if (so->pool_n == so->pool_cap)
	{
		so->pool_cap = Max(64, so->pool_cap * 2);
		so->pool = so->pool == NULL ? palloc(sizeof(SvExact) * so->pool_cap)
			: repalloc(so->pool, sizeof(SvExact) * so->pool_cap);
	}
	i = so->pool_n++;
	so->pool[i] = *e;
	while (i > 0 && sv_exact_before(&so->pool[i], &so->pool[(i - 1) / 2]))
	{
		SvExact		t = so->pool[i];

		so->pool[i] = so->pool[(i - 1) / 2];
		so->pool[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

/* Pop the nearest row of the pool. */
static SvExact
sv_pool_pop(SvScanOpaque *so)
{
	SvExact		top = so->pool[0];
	int			i = 0;

	so->pool[0] = so->pool[--so->pool_n];
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					m = i;
		SvExact		t;

		if (l < so->pool_n && sv_exact_before(&so->pool[l], &so->pool[m]))
			m = l;
		if (r < so->pool_n && sv_exact_before(&so->pool[r], &so->pool[m]))
			m = r;
		if (m == i)
			break;
		t = so->pool[i];
		so->pool[i] = so->pool[m];
		so->pool[m] = t;
		i = m;
	}
	return top;
}

/*
 * May the pool's nearest row go out?  An unread entry of the window has an estimate of at least
 * `frontier`; estimates have exceeded exact distances by `mean + z std` (z = shrinkvec.order_margin)
 * at most in all but a few percent of the rows fetched so far.  A larger z reads further before it lets
 * a row go.  z = 0 is the relaxed order: each batch goes out in exact order as soon as it is read.
 */
static inline bool
sv_pool_ready(const SvScanOpaque *so)
{
	const SvExact *e = &so->pool[0];
	double		mean,
				var;

	if (sv_order_margin <= 0)
		return true;			/* relaxed: each batch goes out in exact order once read */
	if (e->isnan)
		return false;
	if (so->over_n < 2)
		return e->dist <= so->frontier;
	mean = so->over_sum / so->over_n;
	var = Max(0.0, so->over_sum2 / so->over_n - mean * mean);
	return e->dist <= so->frontier - Max(0.0, mean + sv_order_margin * sqrt(var));
}

/*
 * Build the next batch: in the current window after the last one, or in the next window when the
 * current one is exhausted.  False when the scan is over (every list read, or the bound reached).
 */
static bool
sv_next_batch(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;
	bool		is_bit = meta->elemtype == SV_ELEM_BIT;

	for (;;)
	{
		int			k;
		bool		first = false;	/* the scan's first batch */

		if (so->done)
			return false;
		if (!so->started)
		{
			first = true;
			sv_check_scan_memory(meta);
			sv_choose_lists(so);
#if PG_VERSION_NUM >= 150000
			pgstat_count_index_scan(scan->indexRelation);
#endif
			so->started = true;
			so->batch_size = sv_shortlist;
		}
		else
		{
			if (so->batch_full)
			{
				/* the window has more: continue after what earlier batches took of each list */
				so->batch_size = sv_next_batch_size(meta, so->batch_size);
			}
			else if (so->pooling && so->pool_n > 0)
				return false;	/* the window is read: its pool goes out first */
			else if (!sv_next_window(so))
			{
				so->done = true;
				return false;
			}
			if (so->results)
				pfree(so->results);
			if (so->exact)
				pfree(so->exact);
			so->results = NULL;
			so->exact = NULL;
		}
		if (so->scanned >= sv_max_scan_tuples)
		{
			ereport(NOTICE,
					(errmsg("shrinkvec index scan of \"%s\" stopped after %lld candidates",
							RelationGetRelationName(scan->indexRelation), (long long) so->scanned),
					 errdetail("shrinkvec.max_scan_tuples is %d; rows beyond it were not returned.",
							   sv_max_scan_tuples),
					 errhint("Raise shrinkvec.max_scan_tuples, or make the filter more selective with an index of its own.")));
			so->done = true;
			return false;
		}
		k = (int) Min((int64) so->batch_size, (int64) sv_max_scan_tuples - so->scanned);
		sv_scan_batch(scan, k);
		so->scanned += so->nresults_est;
		if (is_bit)
			so->nresults = so->nresults_est;
		else
		{
			/*
			 * Refine codes (the first batch only): the best shrinkvec.rerank candidates by their refine codes
			 * are read from the table, the others are deferred; visible rows of the deferred make up for
			 * dead ones.
			 */
			bool		refine = first && !so->pooling && meta->refine_bits > 0 && sv_rerank > 0 &&
				so->nresults_est > sv_rerank;
			int			want = refine ? sv_rerank : so->batch_size;
			bool		pending = !refine;
			bool		reordered = refine;

			so->nresults = 0;
			if (refine)
			{
				so->frontier = sv_estimate_distance(so, so->results[so->nresults_est - 1].score);
				sv_refine_select(scan, sv_rerank);
				sv_add_exact(scan, so->results, sv_rerank);
				while (so->nresults < want && so->ndeferred > 0)
				{
					int			take = Min(so->ndeferred, want - so->nresults);

					sv_add_exact(scan, so->deferred, take);
					so->deferred += take;
					so->ndeferred -= take;
				}
			}
			/* dead entries take no place: read on until the batch has k visible rows or the window ends */
			for (;;)
			{
				int			need;

				if (pending)
					sv_add_exact(scan, so->results, so->nresults_est);
				pending = true;
				need = want - so->nresults;
				if (need <= 0 || !so->batch_full || so->scanned >= sv_max_scan_tuples)
					break;
				pfree(so->results);
				reordered = false;
				sv_scan_batch(scan, (int) Min((int64) need, (int64) sv_max_scan_tuples - so->scanned));
				so->scanned += so->nresults_est;
			}
			/* (results in refine order have set the frontier before they were reordered) */
			if (so->nresults_est > 0 && !reordered)
				so->frontier = sv_estimate_distance(so, so->results[so->nresults_est - 1].score);
			if (so->pooling)
			{
				for (int i = 0; i < so->nresults; i++)
					sv_pool_push(so, &so->exact[i]);
				so->nresults = so->next = 0;
				return true;	/* the caller decides what the pool may give */
			}
			qsort(so->exact, so->nresults, sizeof(SvExact), sv_exact_cmp);
			so->next = 0;
			/*
			 * The first quarter of the first batch goes out at once, in exact order (a plain LIMIT k with
			 * k up to a quarter of the shortlist costs one batch); rows past it wait in the pool.  With
			 * refine codes, the first half of the rows read (shrinkvec.rerank): the refine codes chose them
			 * from the whole shortlist.
			 */
			so->ndirect = sv_order_margin <= 0 ? so->nresults :
				refine ? Max(1, so->nresults / 2) : Max(1, so->nresults / 4);
			/*
			 * Unread entries of unknown estimate (extreme values) may be nearer than anything read: then
			 * every row waits in the pool until they are read.
			 */
			if (so->unknown_tail || (refine && so->unknown_refine))
				so->ndirect = 0;
		}
		if (so->nresults > 0)
			return true;
		if (so->nresults_est == 0)
			so->batch_full = false;		/* nothing left in this window */
	}
}

/* Return the next row. */
bool
sv_amgettuple(IndexScanDesc scan, ScanDirection dir)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta;
	bool		is_bit;

	/* rd_amcache may have been rebuilt by a relcache invalidation since the last call */
	so->cache = sv_index_cache(scan->indexRelation);
	if (so->null_query)
		return sv_next_null(scan);
	if (!so->have_query)
		return false;
	meta = &so->cache->meta;
	is_bit = meta->elemtype == SV_ELEM_BIT;
	if (!is_bit && so->started && so->next >= so->ndirect)
	{
		/*
		 * Past the first batch: rows come from the pool, nearest first, each once no unread entry of the
		 * window can be nearer; the pool is refilled batch by batch, and emptied when the window is read.
		 */
		MemoryContext old = MemoryContextSwitchTo(so->cxt);

		if (!so->pooling)
		{
			/* the rest of the first batch waits in the pool like every later row */
			so->pooling = true;
			for (int i = so->next; i < so->nresults; i++)
				sv_pool_push(so, &so->exact[i]);
			so->next = so->nresults = so->ndirect = 0;
			if (so->ndeferred > 0)
			{
				/* the first batch's candidates the refine codes put aside are read now */
				sv_add_exact(scan, so->deferred, so->ndeferred);
				for (int i = 0; i < so->nresults; i++)
					sv_pool_push(so, &so->exact[i]);
				so->nresults = so->ndeferred = 0;
			}
			sv_widen_window(so);
		}
		for (;;)
		{
			if (so->pool_n > 0 && (sv_pool_ready(so) || so->done))
				break;
			if (!sv_next_batch(scan))
			{
				if (so->pool_n > 0)
					break;		/* the window (or the scan) is over: what waits goes out */
				if (so->done)
				{
					MemoryContextSwitchTo(old);
					return false;
				}
			}
		}
		MemoryContextSwitchTo(old);
		{
			SvExact		e = sv_pool_pop(so);

			scan->xs_heaptid = e.tid;
			scan->xs_orderbyvals[0] = Float8GetDatum(e.dist);
		}
		scan->xs_recheck = false;
		sv_report_other_keys(scan);
		scan->xs_orderbynulls[0] = false;
		return true;
	}
	if (!so->started || so->next >= so->nresults)
	{
		MemoryContext old = MemoryContextSwitchTo(so->cxt);
		bool		more = sv_next_batch(scan);

		MemoryContextSwitchTo(old);
		if (!more)
			return false;
		if (!is_bit && so->next >= so->ndirect)
			return sv_amgettuple(scan, dir);	/* nothing goes out at once (unknown estimates): the pool */
	}

	scan->xs_recheck = false;
	sv_report_other_keys(scan);
	scan->xs_orderbynulls[0] = false;
	if (is_bit)
	{
		SvCandidate *c = &so->results[so->next++];

		scan->xs_heaptid = c->tid;
		if (so->strategy == SV_STRATEGY_DISTANCE)
			scan->xs_orderbyvals[0] = Float8GetDatum((double) c->score);
		else
			scan->xs_orderbyvals[0] = Int32GetDatum((int32) c->score);
	}
	else
	{
		SvExact    *e = &so->exact[so->next++];

		scan->xs_heaptid = e->tid;
		scan->xs_orderbyvals[0] = Float8GetDatum(e->dist);
	}
	return true;
}

/* End a scan. */
void
sv_amendscan(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;

	if (so->fetch != NULL)
	{
		table_index_fetch_end(so->fetch);
		ExecDropSingleTupleTableSlot(so->slot);
		FreeExecutorState(so->estate);
	}
	MemoryContextDelete(so->cxt);
	pfree(scan->xs_orderbyvals);
	pfree(scan->xs_orderbynulls);
	pfree(so);
	scan->opaque = NULL;
}
