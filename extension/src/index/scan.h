/*
 * scan.h: the state of an ordered scan of a shrinkvec index, private to the scan files:
 *   scan.c          the access method's scan callbacks, batches, NULL queries
 *   scan_lists.c    which lists a batch reads (the window) and what was read of each, page chains
 *   scan_bits.c     a batch of bit_hamming_ops (exact Hamming order)
 *   scan_vectors.c  a batch of the vector opclasses (the asymmetric estimate over the sign codes)
 *   scan_rerank.c   the candidates' heap rows and exact distances, refine codes
 *   scan_pool.c     the pool of fetched rows waiting for their turn (after the first batch)
 *   scan_nulls.c    the rows whose indexed value is NULL, after every entry
 */
#ifndef SHRINKVEC_SCAN_H
#define SHRINKVEC_SCAN_H

#include <float.h>
#include <math.h>

#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "portability/instr_time.h"
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
	SvIndexCache *cache;		/* &cache_copy: the generation the scan started with */
	SvIndexCache cache_copy;	/* copied at rescan: a re-partition or a relcache rebuild cannot change it */
	SvScanSettings settings;	/* probes, shortlist and rerank, fixed at rescan */
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
	SvCandidate *deferred_base;	/* the allocation deferred points into */
	SvCandidate *deferred;		/* candidates of the last pass whose rows were not read (yet) */
	int			ndeferred;
	bool		deferred_by_estimate;	/* deferred are in estimate order (else refine bound order) */
	double		pass_frontier;	/* the last pass's last estimate: every entry it did not take is beyond */
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
	int64		fetched;		/* heap rows fetched for exact distances (reported at DEBUG1) */
	bool		query_clamped;	/* the query's rotation left float's range: every list is probed */
	/* where the scan's time went (reported at DEBUG1): passes over the codes, refine codes, heap rows */
	int			passes;
	int64		kept;			/* entries that passed the kernel's test and were scored in float */
	instr_time	t_codes;
	instr_time	t_refine;
	instr_time	t_heap;
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

	/* after every entry: the table's rows whose indexed value is NULL (scan_nulls.c) */
	bool		cut;			/* stopped by shrinkvec.max_scan_tuples: no tail */
	bool		in_tail;
	bool		tail_started;
	bool		tail_prepared;	/* tail_predicate and tail_impossible are set (kept across rescans) */
	bool		tail_impossible;	/* no row can have a NULL value (NOT NULL key, or the predicate says so) */
	HeapTupleData tail_tuple;	/* the tuple the slot holds */
	BlockNumber tail_blk;
	BlockNumber tail_nblocks;
	BufferAccessStrategy tail_strategy;
	ExprState  *tail_predicate; /* a partial index's predicate, or NULL */
	ItemPointerData *tail_tids; /* root TIDs of the current page's rows */
	int			tail_n;
	int			tail_pos;
} SvScanOpaque;

/*
 * The first pass over the codes takes at least SV_FIRST_PASS_MIN candidates, though it reads the rows of
 * the shortlist only: the others wait, in estimate order, for an executor that wants more rows than the
 * shortlist gives at once (a LIMIT above a quarter of a small shortlist), so it reads them without a
 * second pass.  Later passes take SV_PASS_GROWTH times the candidates of the one before.
 */
#define SV_FIRST_PASS_MIN 128
#define SV_PASS_GROWTH 4
#define SV_DEFERRED_CHUNK 16	/* deferred rows read at a time, at least */

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

/* The batch's top-k heap of candidates: the extension's one heap template, the worst candidate on top. */
#define TOPK_PREFIX sv_cand
#define TOPK_ELEM SvCandidate
#define TOPK_WORSE(h, i, j) sv_worse(&(h)[i], &(h)[j])
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

/* A walk along one list's chain of data pages, the next page pinned and prefetched ahead. */
typedef struct SvChain
{
	Relation	index;
	BlockNumber next;			/* the page after the current one */
	Buffer		buf;			/* the current page, share-locked */
	Buffer		ahead;			/* the next page, pinned */
} SvChain;

/* What a batch scan works with: the top-k heap, a page's kernel sums and selected entries, the tables. */
typedef struct SvBatchWork
{
	SvCandidate *heap;			/* k candidates; becomes the batch's results */
	uint32	   *sums;
	uint32	   *idx;
	uint8	   *tables;
} SvBatchWork;

/*
 * Does list's arithmetic with the query need double (SV_SAFE_NORM2, svindex.h): a query or centroid whose
 * squared norm float arithmetic could overflow?  Such a list is scanned in its "wide" form: estimates in
 * double from weights scaled by a power of two, every entry scored (no float bound to skip by).
 */
static inline bool
sv_list_wide(const SvScanOpaque *so, int list)
{
	return !(so->qnorm2 <= SV_SAFE_NORM2) || !(so->cache->centroid_norm2[list] <= SV_SAFE_NORM2);
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

/* ---- functions shared by the scan files ---- */

/* ---- scan_lists.c ---- */

/* Order every list by its distance to the query; the first shrinkvec.probes form the first window. */
void sv_choose_lists(SvScanOpaque *so);

/* Move the window to the next lists by centroid distance; false when every list was visited. */
bool sv_next_window(SvScanOpaque *so);

/*
 * Widen the window to every list (vector opclasses of an IVF index, once rows wait in the pool): the
 * next batches take the best unread entries of the whole index by estimate, so the pool's frontier
 * bounds every unread entry, not only those of the probed lists.
 */
void sv_widen_window(SvScanOpaque *so);

/* Start walking a chain at its first page. */
void sv_chain_start(SvChain *c, Relation index, BlockNumber first);

/*
 * The next page of the chain, share-locked (the previous one is released), or NULL at the end.  The
 * page after it is pinned and its header, special space and first codes start loading into cache
 * while this one is scanned.
 */
Page sv_chain_next(SvChain *c);

/* The kernel sums of a page's n codes against the query's tables. */
void sv_page_sums(const SvMetaData *meta, Page page, int n, const uint8 *tables, uint32 *sums);

/* Allocate a batch scan's work areas for k candidates. */
SvBatchWork sv_batch_work(const SvMetaData *meta, int k);

/* Free a batch scan's work areas but its heap (the results). */
void sv_batch_work_free(SvBatchWork *bw);

/* Sort a batch's top-k heap into results, best first, and note what it took of each list. */
void sv_finish_batch(SvScanOpaque *so, SvCandidate *heap, int nheap, bool overflow);

/* ---- scan_bits.c ---- */

/*
 * bit_hamming_ops: the best k entries of the window's lists by exact Hamming distance (the query's
 * prefix), after what earlier batches took.  Each page goes through the nibble-table kernel with
 * Hamming tables and a SIMD threshold test against the current k-th best; only the entries that pass
 * reach the top-k heap.
 */
void sv_scan_bits(IndexScanDesc scan, int k);

/* ---- scan_vectors.c ---- */

/*
 * Vector opclasses: the best k entries of the window's lists by the asymmetric estimate of the quantized
 * query (svindex.h), after what earlier batches took, in one pass over their codes: the kernel's sums
 * give every entry's estimate, its SIMD test keeps those at most the k-th best.  Extreme values: see
 * scan_vectors.c.
 */
void sv_scan_vectors(IndexScanDesc scan, int k);

/* ---- scan_rerank.c ---- */

/* qsort comparator of exact rows: smaller distance first, NaN last, then TID. */
int sv_exact_cmp(const void *a, const void *b);

/* Set up what the scan needs to read heap rows and compute indexed values (once per scan). */
void sv_begin_fetch(IndexScanDesc scan);

/*
 * Add the visible ones of n estimate-ordered candidates to the vector batch as exact rows: fetch each
 * heap row visible to the scan's snapshot (the root TID of a HOT chain finds the visible version), drop
 * the others, compute the indexed value (FormIndexDatum: a column or an expression) and its distance
 * with the ORDER BY operator's own function.  Rows are read in heap block order; the caller sorts.
 */
void sv_add_exact(IndexScanDesc scan, const SvCandidate *cands, int n);

/*
 * The funnel's middle step: score the first batch's candidates with their refine codes and order them
 * by lower bound; returns the bounds in that order (palloc'd; -Infinity: unknown, read first).
 */
double	   *sv_refine_order(IndexScanDesc scan);

/* ---- scan.c ---- */

/* The NOTICE of a scan that reached shrinkvec.max_scan_tuples (entries, or rows of the NULL tail). */
void sv_notice_max_scan(IndexScanDesc scan);

/* ---- scan_nulls.c ---- */

/*
 * The next row whose indexed value is NULL, after every entry of the index (false at the table's end):
 * its root TID with a NULL distance.
 */
bool sv_next_null_row(IndexScanDesc scan);

/* Release what the tail holds (at the end of the scan). */
void sv_nulls_end(SvScanOpaque *so);

/* ---- scan_pool.c ---- */

/* Push a row onto the pool (a binary min-heap). */
void sv_pool_push(SvScanOpaque *so, const SvExact *e);

/* Pop the nearest row of the pool. */
SvExact sv_pool_pop(SvScanOpaque *so);

#endif
