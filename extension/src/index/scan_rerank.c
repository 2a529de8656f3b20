/*
 * scan_rerank.c: the exact stage of a vector scan: reading candidates' heap rows under the scan's
 * snapshot, their exact distances by the ORDER BY operator, and the refine codes' second estimate.
 */
#include "postgres.h"

#include "scan.h"

/* qsort comparator of exact rows: smaller distance first, NaN last, then TID. */
int
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

/* Set up what the scan needs to read heap rows and compute indexed values (once per scan). */
void
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

/* qsort comparator of candidates by heap TID (block, then offset). */
static int
sv_cand_tid_cmp(const void *a, const void *b)
{
	return ItemPointerCompare((ItemPointer) &((const SvCandidate *) a)->tid,
							  (ItemPointer) &((const SvCandidate *) b)->tid);
}

/*
 * Add the visible ones of n estimate-ordered candidates to the vector batch as exact rows: fetch each
 * heap row visible to the scan's snapshot (the root TID of a HOT chain finds the visible version), drop
 * the others, compute the indexed value (FormIndexDatum: a column or an expression) and its distance
 * with the ORDER BY operator's own function.  The rows are read in heap block order (a batch's rows on one
 * page share a buffer pin, and pages not in shared buffers are read in file order, as a bitmap heap scan
 * reads them); the caller sorts the exact rows.
 */
void
sv_add_exact(IndexScanDesc scan, const SvCandidate *cands_in, int n)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	SvCandidate *cands = n > 1 ? palloc(sizeof(SvCandidate) * n) : (SvCandidate *) cands_in;
	ScanKey		orderby = &scan->orderByData[0];
	ExprContext *econtext;
	instr_time	start,
				end;

	INSTR_TIME_SET_CURRENT(start);
	if (n > 1)
	{
		memcpy(cands, cands_in, sizeof(SvCandidate) * n);
		qsort(cands, n, sizeof(SvCandidate), sv_cand_tid_cmp);
	}
	sv_begin_fetch(scan);
	so->fetched += n;
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
		ItemPointerData tid = cands[i].tid;

		CHECK_FOR_INTERRUPTS();

		/*
		 * The fetch sets tid to the version it found, a heap-only tuple after a HOT update: the row goes
		 * out by the entry's TID (the chain's root), which the executor's fetch can follow, and a heap-only
		 * tuple's own TID it cannot.
		 */
		if (!table_index_fetch_tuple(so->fetch, &tid, scan->xs_snapshot, so->slot, &call_again, &all_dead))
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
	if (n > 1)
		pfree(cands);
	INSTR_TIME_SET_CURRENT(end);
	INSTR_TIME_ACCUM_DIFF(so->t_heap, end, start);
}

/* The values u of a refine code (code_bits dims of refine_bits each), for the double dot of a wide query. */
static void
sv_refine_values(const SvMetaData *meta, const uint8 *code, float *u)
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
}

/* A candidate's refine estimate and its lower bound, for sorting the batch by the bound. */
typedef struct SvRefined
{
	double		lb;				/* est - bound, in the exact distance's units; -Infinity: unknown */
	int			idx;			/* in the batch's results */
} SvRefined;

/* qsort comparator of refine lower bounds: smaller first, then the earlier candidate of the batch. */
static int
sv_refined_cmp(const void *a, const void *b)
{
	const SvRefined *x = a,
			   *y = b;

	if (x->lb != y->lb)
		return x->lb < y->lb ? -1 : 1;
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
 * A candidate's lower bound from its slot of a refine page (share-locked), in the exact distance's units
 * (the ORDER BY operator's: L2 is not squared), computed in double: its refine estimate minus
 * SV_REFINE_BOUND_SIGMAS standard deviations of the code's error (svindex.h: sd |q| sqrt(err2 / dims),
 * twice that for a squared L2), widened by SV_REFINE_BOUND_SLACK |q| |x| for the rounding of float
 * arithmetic (an exact code, err2 = 0, still differs from pgvector's distance in the last bits).  -Infinity when the slot no longer holds its TID (VACUUM moved entries)
 * or its factors are not finite (unknown: the row is read first).  qsum and qn2 are sum q and |q|^2;
 * wide: the query overflows the float dot product.
 */
static double
sv_refine_lower_bound(const SvScanOpaque *so, Page page, const SvCandidate *c, bool wide, double qsum,
					  double qn2, float *u)
{
	const SvMetaData *meta = &so->cache->meta;
	const uint8 *code;
	int			list;
	float		lo,
				step,
				norm2,
				err2;
	double		dot,
				qx,
				sd,
				e;

	if (SvPageGetOpaque(page)->flags != SV_PAGE_REFINE ||
		!ItemPointerEquals(&sv_refine_tids(page, meta)[c->rslot], (ItemPointer) &c->tid))
		return -INFINITY;
	list = (int) SvPageGetOpaque(page)->list;
	lo = sv_refine_lo(page, meta)[c->rslot];
	step = sv_refine_step(page, meta)[c->rslot];
	norm2 = sv_refine_norm2(page, meta)[c->rslot];
	err2 = sv_refine_err2(page, meta)[c->rslot];
	if (!(isfinite(lo) && isfinite(step) && isfinite(norm2) && isfinite(err2) && (int) list < meta->lists))
		return -INFINITY;
	code = sv_refine_codes(page, meta) + (Size) c->rslot * meta->refine_bytes;
	if (!wide)
		dot = sv_kernels.code_dot(so->q, code, meta->code_bits, meta->refine_bits);
	else
	{
		/* a query this large overflows the float dot product */
		sv_refine_values(meta, code, u);
		dot = 0;
		for (int d = 0; d < meta->code_bits; d++)
			dot += (double) so->q[d] * u[d];
	}
	qx = so->list_qc[list] + (double) lo * qsum + (double) step * dot;
	/* the code's error, and a relative slack for the rounding of the estimate's own arithmetic */
	sd = sqrt(qn2 * (double) err2 / meta->code_bits) + SV_REFINE_BOUND_SLACK * sqrt(qn2 * (double) norm2);
	if (meta->kind == SV_KIND_L2)
	{
		e = qn2 + (double) norm2 - 2.0 * qx - 2.0 * SV_REFINE_BOUND_SIGMAS * sd;
		e = isnan(e) ? e : sqrt(Max(e, 0.0));
	}
	else if (meta->kind == SV_KIND_IP)
		e = -qx - SV_REFINE_BOUND_SIGMAS * sd;
	else
		e = 1.0 - qx - SV_REFINE_BOUND_SIGMAS * sd;
	return isnan(e) ? -INFINITY : e;
}

/*
 * The funnel's middle step: score the batch's candidates with their refine codes and order them by
 * their lower bound (scan.c reads rows in that order while a bound can still beat the rows read).
 * Returns the bounds in the new order (palloc'd).  A candidate whose refine slot no longer holds its TID
 * (VACUUM moved entries since its data page was read) has the bound -Infinity: it is read first.
 */
double *
sv_refine_order(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;
	int			n = so->nresults_est;
	SvRefined  *est = palloc(sizeof(SvRefined) * n);
	SvCandidate **byloc = palloc(sizeof(SvCandidate *) * n);
	SvCandidate *sorted = palloc(sizeof(SvCandidate) * n);
	double	   *lb = palloc(sizeof(double) * Max(n, 1));
	float	   *u = palloc(sizeof(float) * meta->code_bits);
	double		qsum = 0,
				qn2 = 0;
	Buffer		buf = InvalidBuffer;
	Page		page = NULL;
	bool		wide = !(so->qnorm2 <= SV_SAFE_NORM2);
	instr_time	start,
				end;

	INSTR_TIME_SET_CURRENT(start);
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
				buf = sv_read_recent(scan->indexRelation, c->rblk);
				LockBuffer(buf, BUFFER_LOCK_SHARE);
				page = BufferGetPage(buf);
			}
			e = sv_refine_lower_bound(so, page, c, wide, qsum, qn2, u);
		}
		est[i].lb = e;
		est[i].idx = i;
	}
	if (BufferIsValid(buf))
		UnlockReleaseBuffer(buf);
	qsort(est, n, sizeof(SvRefined), sv_refined_cmp);
	for (int i = 0; i < n; i++)
	{
		sorted[i] = so->results[est[i].idx];
		lb[i] = est[i].lb;
	}
	memcpy(so->results, sorted, sizeof(SvCandidate) * n);
	pfree(est);
	pfree(byloc);
	pfree(sorted);
	pfree(u);
	INSTR_TIME_SET_CURRENT(end);
	INSTR_TIME_ACCUM_DIFF(so->t_refine, end, start);
	return lb;
}
