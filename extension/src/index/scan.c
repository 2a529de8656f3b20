/*
 * scan.c: ordered scans of a shrinkvec index: the access method's scan callbacks and the batches.
 * The other scan_*.c files hold the steps (scan.h lists them).
 *
 * A scan goes on while the executor wants rows: it works in batches, and a scan ends only when the
 * index is exhausted or shrinkvec.max_scan_tuples candidates were read (a NOTICE says so).  Batches:
 *
 * bit_hamming_ops: a batch is the best `k` entries by (Hamming distance, TID) of the probed lists after
 * the last entry of the previous batch, returned in that order with their exact distances.  A flat
 * index yields the complete exact order.
 *
 * vector opclasses: a batch is the best `k` entries by the asymmetric estimate (the query, quantized as
 * the kernel's tables hold it, against the sign code, see svindex.h) after the previous batch's last, all
 * found in one pass over the window's codes.  The scan fetches each candidate's heap
 * tuple under the scan's snapshot (table_index_fetch_tuple), drops those it cannot see (dead entries never
 * take a place), computes the exact distance with the ORDER BY operator's own function, and returns the
 * batch in exact (distance, TID) order without xs_recheckorderby.  Within a batch the order is exact;
 * across batches it is relaxed (as pgvector's hnsw.iterative_scan = relaxed_order): a row of a later
 * batch can be nearer than one returned before it.  The first batch reads the rows of shrinkvec.shortlist
 * candidates (its pass keeps at least SV_FIRST_PASS_MIN without refine codes); the first quarter goes
 * out at once, in exact order.  Past it, rows wait in a pool: the pass's other candidates are read in
 * estimate order as the pool needs them (no second pass for a LIMIT just past the quarter), then later
 * passes take SV_PASS_GROWTH times as many candidates (bounded by work_mem), read the same way.
 *
 * IVF: the first batch comes from the shrinkvec.probes lists nearest the query.  Vector opclasses: once
 * rows wait in the pool (the executor wants more than the first quarter of the first batch, as a filter
 * or a join makes it), the window widens to every list: later passes take the best unread entries of
 * the whole index (what each list gave is kept per list, so nothing comes twice).
 * bit_hamming_ops: when the probed lists are exhausted the scan goes on with the next lists by centroid
 * distance (iterative probing), in exact order within each window.
 *
 * Refine codes (WITH (refine = B)): the first batch's candidates are scored again with their refine
 * codes (svindex.h), each with a lower bound from its code's error, and rows are fetched in bound order
 * only while a bound can still beat the SV_REFINE_DIRECT-th nearest row fetched (shrinkvec.rerank caps
 * the fetches); those SV_REFINE_DIRECT rows go out at once in exact order.  The others are deferred: if
 * the executor wants more, they are all fetched into the pool before the scan goes on (they are in bound
 * order, not estimate order, so the pool's frontier cannot move through them one by one).
 *
 * IVF and the frontier: rows of the pool may go out before the widened pass has read the unprobed lists,
 * against the frontier of the lists read so far (relaxed order: an entry of an unprobed list can come
 * after a farther row of a probed one).
 *
 * A NULL query returns every entry (distance NULL), as pgvector's indexes do.
 *
 * After every entry, the table's rows whose indexed value is NULL follow (distance NULL), as in the exact
 * plan (scan_nulls.c).
 */
#include "postgres.h"

#include "scan.h"

/* Scan the window's lists once: the best k candidates after what earlier batches took, in results. */
static void
sv_scan_batch(IndexScanDesc scan, int k)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	instr_time	start,
				end;

	INSTR_TIME_SET_CURRENT(start);
	if (so->cache->meta.elemtype == SV_ELEM_BIT)
		sv_scan_bits(scan, k);
	else
		sv_scan_vectors(scan, k);
	INSTR_TIME_SET_CURRENT(end);
	INSTR_TIME_ACCUM_DIFF(so->t_codes, end, start);
	so->passes++;
}

/* Bytes a batch keeps per candidate. */
static Size
sv_candidate_bytes(const SvMetaData *meta)
{
	return meta->elemtype == SV_ELEM_BIT ? sizeof(SvCandidate) : sizeof(SvCandidate) + sizeof(SvExact);
}

/* The most candidates a pass may keep within work_mem (at least one). */
static Size
sv_most_candidates(const SvMetaData *meta)
{
	return Max((Size) work_mem * 1024 / sv_candidate_bytes(meta), 1);
}

/*
 * Refuse a shortlist whose memory would exceed work_mem: a batch holds its candidates (and, for a vector
 * opclass, their exact distances).  Later batches grow only as far as work_mem allows.
 */
static void
sv_check_scan_memory(const SvMetaData *meta, int shortlist)
{
	Size		need = sv_candidate_bytes(meta) * (Size) shortlist;

	if (need > (Size) work_mem * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("shrinkvec.shortlist %d needs about %zu kB for its candidates, more than work_mem (%d kB)",
						shortlist, need / 1024, work_mem),
				 errhint("Lower shrinkvec.shortlist or raise work_mem.")));
}

/* The size of the pass after one of k candidates: SV_PASS_GROWTH times as large, as far as work_mem allows. */
static int
sv_next_batch_size(const SvMetaData *meta, int k)
{
	Size		most = sv_most_candidates(meta);
	Size		next = (Size) k * SV_PASS_GROWTH;

	if (next > most)
		next = Max(most, (Size) k);
	return (int) Min(next, (Size) SV_INDEX_MAX_SHORTLIST);
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

		/* a shorter query searches a prefix with <^>; the distance operator needs the full length */
		if (len > meta->code_bits || len < 1)
			sv_bit_length_error(meta->code_bits, len, "A query may be a prefix of the indexed codes, not longer.");
		if (len < meta->code_bits && so->strategy == SV_STRATEGY_DISTANCE)
			sv_bit_length_error(meta->code_bits, len, "Use the operator <^> to search with a prefix of the codes.");
		so->qbits = len;
		so->qcode = palloc0(meta->code_bytes);
		memcpy(so->qcode, VARBITS(b), VARBITBYTES(b));
	}
	else
	{
		so->q = palloc(sizeof(float) * meta->code_bits);
		sv_datum_to_floats(value, so->cache, SV_FOR_QUERY, so->q, &so->query_clamped);
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
	so->cache_copy = *sv_index_cache(scan->indexRelation);
	so->cache = &so->cache_copy;
	so->settings = sv_scan_settings(scan->indexRelation, &so->cache->meta);
	so->have_query = false;
	so->started = false;
	so->done = false;
	so->results = NULL;
	so->exact = NULL;
	so->nresults = so->next = 0;
	so->scanned = 0;
	so->fetched = 0;
	so->passes = 0;
	so->kept = 0;
	INSTR_TIME_SET_ZERO(so->t_codes);
	INSTR_TIME_SET_ZERO(so->t_refine);
	INSTR_TIME_SET_ZERO(so->t_heap);
	so->query_clamped = false;
	so->pooling = false;
	so->pool = NULL;
	so->pool_n = so->pool_cap = 0;
	so->frontier = 0;
	so->deferred = so->deferred_base = NULL;
	so->ndeferred = 0;
	so->deferred_by_estimate = false;
	so->pass_frontier = 0;
	so->list_qc = NULL;
	so->over_n = so->over_sum = so->over_sum2 = 0;
	so->null_query = false;
	so->null_list = 0;
	so->null_blk = InvalidBlockNumber;
	so->null_tids = NULL;
	so->null_n = so->null_pos = 0;
	so->cut = so->in_tail = so->tail_started = false;
	so->tail_tids = NULL;
	so->tail_n = so->tail_pos = 0;
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

/*
 * Start the next batch: the first one (the lists, the stats, shrinkvec.shortlist), or one more in the
 * current window, or the next window.  False when the scan is over or its pool goes out first; *first
 * is set for the scan's first batch.
 */
static bool
sv_start_batch(IndexScanDesc scan, bool *first)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;

	*first = false;
	if (so->done)
		return false;
	if (!so->started)
	{
		*first = true;
		sv_check_scan_memory(meta, so->settings.shortlist);
		sv_choose_lists(so);
#if PG_VERSION_NUM >= 150000
		pgstat_count_index_scan(scan->indexRelation);
#endif
#if PG_VERSION_NUM >= 180000
		if (scan->instrument)
			scan->instrument->nsearches++;	/* EXPLAIN ANALYZE's "Index Searches" */
#endif
		so->started = true;
		so->batch_size = so->settings.shortlist;
		if (meta->elemtype != SV_ELEM_BIT && !(meta->refine_bits > 0 && so->settings.rerank > 0))
			so->batch_size = Max(so->batch_size, (int) Min((Size) SV_FIRST_PASS_MIN, sv_most_candidates(meta)));
	}
	else
	{
		if (so->batch_full)
		{
			/* the window has more: continue after what earlier batches took of each list */
			so->batch_size = sv_next_batch_size(meta, so->batch_size);
		}
		else if (so->pooling && so->pool_n > 0)
			return false;		/* the window is read: its pool goes out first */
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
		sv_notice_max_scan(scan);
		so->done = true;
		so->cut = true;
		return false;
	}
	return true;
}

/* The NOTICE of a scan that reached shrinkvec.max_scan_tuples (entries, or rows of the NULL tail). */
void
sv_notice_max_scan(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;

	ereport(NOTICE,
			(errmsg("shrinkvec index scan of \"%s\" stopped after %lld candidates",
					RelationGetRelationName(scan->indexRelation), (long long) so->scanned),
			 errdetail("shrinkvec.max_scan_tuples is %d; rows beyond it were not returned.", sv_max_scan_tuples),
			 errhint("Raise shrinkvec.max_scan_tuples, or make the filter more selective with an index of its own.")));
}

/* qsort comparator of doubles, ascending. */
static int
sv_double_cmp(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* The k-th smallest exact distance of the rows read so far (NaN counts as +Infinity); k <= nresults. */
static double
sv_kth_exact(const SvScanOpaque *so, int k)
{
	double	   *d = palloc(sizeof(double) * so->nresults);
	double		kth;

	for (int i = 0; i < so->nresults; i++)
		d[i] = so->exact[i].isnan ? INFINITY : so->exact[i].dist;
	qsort(d, so->nresults, sizeof(double), sv_double_cmp);
	kth = d[k - 1];
	pfree(d);
	return kth;
}

/*
 * Keep n candidates whose rows were not read as the deferred ones (in estimate order when by_estimate,
 * else in refine bound order), replacing the earlier ones (all read by now).
 */
static void
sv_defer(SvScanOpaque *so, const SvCandidate *cands, int n, bool by_estimate)
{
	if (so->deferred_base != NULL)
		pfree(so->deferred_base);
	so->ndeferred = n;
	so->deferred_base = so->deferred = MemoryContextAlloc(so->cxt, sizeof(SvCandidate) * Max(n, 1));
	memcpy(so->deferred, cands, sizeof(SvCandidate) * n);
	so->deferred_by_estimate = by_estimate;
}

/*
 * The frontier of the pool: every unread entry of the window has an estimate of at least this.  Deferred
 * candidates in estimate order start at the first one's; past them, the last pass's last estimate.
 */
static void
sv_set_frontier(SvScanOpaque *so)
{
	if (so->ndeferred > 0 && so->deferred_by_estimate)
		so->frontier = Min(so->pass_frontier, sv_estimate_distance(so, so->deferred[0].score));
	else
		so->frontier = so->pass_frontier;
}

/* Read up to n deferred candidates' rows (the visible ones become exact rows of the batch). */
static void
sv_read_deferred(IndexScanDesc scan, int n)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	int			take = Min(so->ndeferred, n);

	sv_add_exact(scan, so->deferred, take);
	so->deferred += take;
	so->ndeferred -= take;
	sv_set_frontier(so);
}

/*
 * Refine codes (the first batch only): read candidates' rows in the order of their refine lower bounds
 * until the want-th nearest row read is no farther than the next unread bound (no unread candidate can
 * then beat it, within the bounds' confidence), or shrinkvec.rerank rows were read; the others are
 * deferred, and visible rows of the deferred make up for dead ones.  An index of a prefix (bits < dims)
 * has no bound on the dims it does not code: it reads 2 * want rows (at most shrinkvec.rerank).
 */
static void
sv_refine_first_batch(IndexScanDesc scan, int want)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;
	bool		bounded = meta->code_bits == meta->dims;
	int			n = so->nresults_est;
	int			rerank = so->settings.rerank;
	int			cap = Min(n, Max(bounded ? rerank : Min(rerank, 2 * want), want));
	int			nread = 0;
	double	   *lb;

	lb = sv_refine_order(scan);
	while (nread < cap)
	{
		int			chunk = Min(cap - nread, nread == 0 ? want : Max(8, nread / 2));

		sv_add_exact(scan, so->results + nread, chunk);
		nread += chunk;
		if (bounded && nread < n && so->nresults >= want && sv_kth_exact(so, want) <= lb[nread])
			break;
	}
	/*
	 * Unknown estimates (bound -Infinity) sort first: when some were read and others deferred, the rows
	 * read are not certified against the deferred ones (the cap may have stopped the reads early).
	 */
	so->unknown_refine = nread < n && lb[0] == -INFINITY;
	sv_defer(so, so->results + nread, n - nread, false);
	pfree(lb);
	while (so->nresults < want && so->ndeferred > 0)
		sv_read_deferred(scan, want - so->nresults);
}

/*
 * The first batch without refine codes: read the rows of the first want candidates (the shortlist); the
 * pass's other candidates are deferred in estimate order, and visible rows of them make up for dead ones.
 */
static void
sv_read_first_batch(IndexScanDesc scan, int want)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	int			n = so->nresults_est;
	int			take = Min(n, want);

	sv_add_exact(scan, so->results, take);
	sv_defer(so, so->results + take, n - take, true);
	while (so->nresults < want && so->ndeferred > 0)
		sv_read_deferred(scan, want - so->nresults);
}

/*
 * Dead entries take no place: read the batch's rows (unless pending is false: they were read), then
 * scan on until the batch has want visible rows or the window ends.  *reordered is cleared when a new
 * scan replaces the results.
 */
static void
sv_read_visible(IndexScanDesc scan, int want, bool pending, bool *reordered)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;

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
		*reordered = false;
		sv_scan_batch(scan, (int) Min((int64) need, (int64) sv_max_scan_tuples - so->scanned));
		so->scanned += so->nresults_est;
	}
}

/*
 * The exact stage of a vector batch just scanned.  Pooling (after the first batch): its candidates are
 * deferred in estimate order, their rows read as the pool needs them (true: the caller decides what the
 * pool may give).  The first batch: read the shortlist's rows (refine codes: by their bounds), sort them
 * and set how many go out at once (false).
 */
static bool
sv_vector_batch(IndexScanDesc scan, bool first)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;
	bool		refine = first && !so->pooling && meta->refine_bits > 0 && so->settings.rerank > 0 &&
		so->nresults_est > SV_REFINE_DIRECT;
	int			shortlist = so->settings.shortlist;
	int			want = refine ? SV_REFINE_DIRECT : Min(so->batch_size, first ? shortlist : so->batch_size);
	bool		reordered = true;

	so->nresults = 0;
	so->pass_frontier = so->nresults_est > 0 ?
		sv_estimate_distance(so, so->results[so->nresults_est - 1].score) : so->pass_frontier;
	if (so->pooling)
	{
		sv_defer(so, so->results, so->nresults_est, true);
		sv_set_frontier(so);
		so->nresults = so->next = 0;
		return true;
	}
	if (refine)
		sv_refine_first_batch(scan, want);
	else if (first)
		sv_read_first_batch(scan, want);
	else
		reordered = false;
	sv_read_visible(scan, want, !reordered, &reordered);
	if (so->nresults_est > 0 && !reordered)
		so->pass_frontier = sv_estimate_distance(so, so->results[so->nresults_est - 1].score);
	sv_set_frontier(so);
	qsort(so->exact, so->nresults, sizeof(SvExact), sv_exact_cmp);
	so->next = 0;

	/*
	 * The first quarter of the shortlist goes out at once, in exact order (a plain LIMIT k with k up to a
	 * quarter of the shortlist costs one batch); rows past it wait in the pool.  With refine codes, the
	 * nearest SV_REFINE_DIRECT rows read: the refine bounds chose them from the whole shortlist.
	 */
	so->ndirect = sv_order_margin <= 0 ? so->nresults :
		refine ? Min(so->nresults, SV_REFINE_DIRECT) : Max(1, so->nresults / 4);

	/*
	 * Unread entries of unknown estimate (extreme values) may be nearer than anything read: then every
	 * row waits in the pool until they are read.
	 */
	if (so->unknown_tail || (refine && so->unknown_refine) ||
		(so->ndeferred > 0 && so->deferred_by_estimate && so->deferred[0].score == -INFINITY))
		so->ndirect = 0;
	return false;
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

	for (;;)
	{
		int			k;
		bool		first;

		if (!sv_start_batch(scan, &first))
			return false;
		k = (int) Min((int64) so->batch_size, (int64) sv_max_scan_tuples - so->scanned);
		sv_scan_batch(scan, k);
		so->scanned += so->nresults_est;
		if (meta->elemtype == SV_ELEM_BIT)
			so->nresults = so->nresults_est;
		else if (sv_vector_batch(scan, first))
			return true;		/* pooled: the caller decides what the pool may give */
		if (so->nresults > 0)
			return true;
		if (so->nresults_est == 0)
			so->batch_full = false; /* nothing left in this window */
	}
}

/*
 * Start pooling (vector opclasses, past the rows of the first batch that go out at once): the rest of
 * the first batch and the candidates the refine codes put aside wait in the pool, and the window
 * widens to every list.
 */
static void
sv_start_pooling(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;

	so->pooling = true;
	for (int i = so->next; i < so->nresults; i++)
		sv_pool_push(so, &so->exact[i]);
	so->next = so->nresults = so->ndirect = 0;
	if (so->ndeferred > 0 && !so->deferred_by_estimate)
	{
		/* the first batch's candidates the refine codes put aside are read now (they are in bound order) */
		sv_read_deferred(scan, so->ndeferred);
		for (int i = 0; i < so->nresults; i++)
			sv_pool_push(so, &so->exact[i]);
		so->nresults = 0;
	}
	sv_widen_window(so);
}

/*
 * The next row past the first batch: rows come from the pool, nearest first, each once no unread entry
 * of the window can be nearer; the pool is refilled batch by batch, and emptied when the window is read.
 */
static bool
sv_next_pooled(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(so->cxt);
	SvExact		e;

	if (!so->pooling)
		sv_start_pooling(scan);
	for (;;)
	{
		if (so->pool_n > 0 && (sv_pool_ready(so) || so->done))
			break;
		if (so->ndeferred > 0)
		{
			/*
			 * The next deferred candidates' rows, in estimate order, into the pool: as many as were read
			 * so far (at least SV_DEFERRED_CHUNK), so reads double as the pool waits; the relaxed order
			 * (order_margin 0) reads them all, and the pass goes out in exact order.
			 */
			sv_read_deferred(scan, sv_order_margin <= 0 ? so->ndeferred :
							 Max(SV_DEFERRED_CHUNK, (int) Min(so->fetched, (int64) 4096)));
			for (int i = 0; i < so->nresults; i++)
				sv_pool_push(so, &so->exact[i]);
			so->nresults = 0;
			continue;
		}
		if (!sv_next_batch(scan))
		{
			if (so->pool_n > 0)
				break;			/* the window (or the scan) is over: what waits goes out */
			if (so->done)
			{
				MemoryContextSwitchTo(old);
				return false;
			}
		}
	}
	MemoryContextSwitchTo(old);
	e = sv_pool_pop(so);
	scan->xs_heaptid = e.tid;
	scan->xs_orderbyvals[0] = Float8GetDatum(e.dist);
	scan->xs_recheck = false;
	sv_report_other_keys(scan);
	scan->xs_orderbynulls[0] = false;
	return true;
}

/* The next row of the index's entries, in order (false when they are exhausted or the scan was cut). */
static bool
sv_next_entry(IndexScanDesc scan, ScanDirection dir)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta;
	bool		is_bit;

	if (so->null_query)
		return sv_next_null(scan);
	if (!so->have_query)
		return false;
	meta = &so->cache->meta;
	is_bit = meta->elemtype == SV_ELEM_BIT;
	if (!is_bit && so->started && so->next >= so->ndirect)
		return sv_next_pooled(scan);
	if (!so->started || so->next >= so->nresults)
	{
		MemoryContext old = MemoryContextSwitchTo(so->cxt);
		bool		more = sv_next_batch(scan);

		MemoryContextSwitchTo(old);
		if (!more)
			return false;
		if (!is_bit && so->next >= so->ndirect)
			return sv_next_entry(scan, dir);	/* nothing goes out at once (unknown estimates): the pool */
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

/* Return the next row: the index's entries in order, then the rows whose indexed value is NULL. */
bool
sv_amgettuple(IndexScanDesc scan, ScanDirection dir)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;

	if (!so->in_tail)
	{
		if (sv_next_entry(scan, dir))
			return true;
		if (so->cut || (!so->have_query && !so->null_query))
			return false;
		so->in_tail = true;
	}
	return sv_next_null_row(scan);
}

/* End a scan. */
void
sv_amendscan(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;

	if (so->started)
		ereport(DEBUG1,
				(errmsg_internal("shrinkvec index scan of \"%s\": %lld candidates, %lld heap rows fetched; "
								 "codes %.3f ms, refine %.3f ms, heap %.3f ms, passes %d, scored %lld",
								 RelationGetRelationName(scan->indexRelation), (long long) so->scanned,
								 (long long) so->fetched, INSTR_TIME_GET_MILLISEC(so->t_codes),
								 INSTR_TIME_GET_MILLISEC(so->t_refine), INSTR_TIME_GET_MILLISEC(so->t_heap),
								 so->passes, (long long) so->kept)));
	sv_nulls_end(so);
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
