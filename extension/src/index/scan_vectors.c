/*
 * scan_vectors.c: a batch of a vector opclass scan: the best k entries by the asymmetric estimate of
 * the quantized query against the sign codes, straight from the FastScan kernel's sums.
 */
#include "postgres.h"

#include "scan.h"

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
 * The work of one vector batch: the candidates and the query's weights and tables.  The candidates are a
 * buffer of up to cap = 2k entries appended in page order (no heap): when it fills, a selection keeps the
 * best k and their worst score becomes tau, the kernel's threshold, until the next selection.  Appends
 * cost no comparisons; a heap cost a sift of log k branchy compares per entry kept.
 */
typedef struct SvVecBatch
{
	SvBatchWork bw;				/* heap, kernel sums, selected entries, the query's nibble tables */
	int			k;
	int			nheap;			/* candidates in the buffer (bw.heap) */
	int			cap;			/* its capacity */
	float		tau;			/* the k-th best of the last selection (+Infinity before one) */
	int64		kept;			/* entries the kernel's test kept (scored in float) */
	bool		overflow;		/* entries beyond the k-th best exist (or were taken before) */
	uint8	   *code;			/* code_bytes, for one entry's code */
	int			rcap;			/* refine entries per refine page (0: no refine codes) */
	float	   *w;				/* the weights: the query (cosine, IP) or query - centroid (L2) */
	SvFsQuery	fq;				/* the quantized weights' delta, vsum and error bound */
	float		wsum;			/* sum of w */
	double		qscale;			/* non-L2: w = q * qscale */
	int32		soff;			/* the kernel sums' offset */
	bool		is_l2;
} SvVecBatch;

/* What one list adds to the estimate of its entries (and to their bound in the kernel's test). */
typedef struct SvListTerms
{
	int			list;
	bool		wide;			/* scored in double (sv_list_wide) */
	float		base;			/* the estimate's constant term */
	double		based;			/* base in double (wide lists) */
	double		wscale;			/* w = (q - c or q) * wscale */
	float		f;				/* the bound's factor of alpha: -2 for L2, -1 otherwise */
	float		c0;				/* the score's terms (kernels.h, sv_fs_bound) */
	float		c1;
} SvListTerms;

/* Fill the batch's weights for the query; non-L2: one set of tables serves every list. */
static void
sv_query_weights(SvScanOpaque *so, SvVecBatch *vb)
{
	const SvMetaData *meta = &so->cache->meta;

	vb->w = palloc(sizeof(float) * meta->code_bits);
	memset(&vb->fq, 0, sizeof(vb->fq));
	vb->wsum = 0;
	vb->qscale = 1.0;
	vb->soff = 2 * SV_FS_BIAS * meta->code_bytes;
	vb->is_l2 = meta->kind == SV_KIND_L2;
	if (vb->is_l2)
		return;
	/* the weights are the query itself (scaled when large) */
	if (!(so->qnorm2 <= SV_SAFE_NORM2))
	{
		double		maxabs = 0;

		for (int d = 0; d < meta->code_bits; d++)
			maxabs = Max(maxabs, fabs((double) so->q[d]));
		vb->qscale = sv_weight_scale(maxabs);
	}
	for (int d = 0; d < meta->code_bits; d++)
		vb->w[d] = (float) ((double) so->q[d] * vb->qscale);
	sv_fs_tables_ip(vb->w, meta->code_bits, meta->code_bytes, vb->bw.tables, &vb->fq);
	vb->wsum = sv_kernels.sum(vb->w, meta->code_bits);
}

/* L2: the weights q - c of list's centroid c (scaled, in double, for a wide list) and their tables. */
static void
sv_l2_list_weights(SvScanOpaque *so, const float *c, SvVecBatch *vb, SvListTerms *lt)
{
	const SvMetaData *meta = &so->cache->meta;

	if (lt->wide)
	{
		double		maxabs = 0;

		lt->based = sv_l2sq_double(so->q, c, meta->code_bits);
		for (int d = 0; d < meta->code_bits; d++)
			maxabs = Max(maxabs, fabs((double) so->q[d] - (double) c[d]));
		lt->wscale = sv_weight_scale(maxabs);
		for (int d = 0; d < meta->code_bits; d++)
			vb->w[d] = (float) (((double) so->q[d] - (double) c[d]) * lt->wscale);
	}
	else
	{
		for (int d = 0; d < meta->code_bits; d++)
			vb->w[d] = so->q[d] - c[d];
		lt->wscale = 1.0;
	}
	sv_fs_tables_ip(vb->w, meta->code_bits, meta->code_bytes, vb->bw.tables, &vb->fq);
	vb->wsum = sv_kernels.sum(vb->w, meta->code_bits);
}

/* The terms of list's entries' estimates and bounds (and, for L2, the list's weights). */
static void
sv_list_terms(SvScanOpaque *so, int list, SvVecBatch *vb, SvListTerms *lt)
{
	const SvMetaData *meta = &so->cache->meta;
	const float *c = (const float *) so->cache->centroids + (Size) list * meta->code_bits;
	float		qc = (float) so->list_qc[list];

	lt->list = list;
	lt->wide = sv_list_wide(so, list);
	lt->f = -1.0f;
	lt->based = 0;
	lt->wscale = vb->qscale;
	if (vb->is_l2)
	{
		sv_l2_list_weights(so, c, vb, lt);
		lt->base = so->qnorm2 + so->cache->centroid_norm2[list] - 2.0f * qc;
		lt->f = -2.0f;
	}
	else if (meta->kind == SV_KIND_IP)
	{
		lt->base = -qc;
		lt->based = -so->list_qc[list];
	}
	else
	{
		lt->base = 1.0f - qc;
		lt->based = 1.0 - so->list_qc[list];
	}
	if (!lt->wide)
		lt->based = lt->base;

	/*
	 * The estimate uses the quantized weights (kernels.h): <w, s> ~ delta * (2 (S - soff) - vsum), so the
	 * kernel's sums give every entry's score and its test is exact (the float weights bound it within
	 * err_l1, as RaBitQ's quantized query does).  The kernel keeps an entry a hair above the k-th best, so
	 * float rounding never drops a tie.
	 */
	lt->c1 = 2.0f * vb->fq.delta;
	lt->c0 = -vb->fq.delta * (float) vb->fq.vsum;
}

/* A data page's arrays, found once per page (page.c's accessors are calls, not inlined). */
typedef struct SvPageArrays
{
	Page		page;
	const uint8 *codes;
	const float *alpha;
	const float *r2;
} SvPageArrays;

/*
 * The entries of a page that may beat the k-th best, into bw.idx (their count is returned): every entry
 * of a wide list, else those the kernel's threshold test keeps.
 */
static int
sv_page_select(const SvMetaData *meta, const SvPageArrays *pa, int n, SvVecBatch *vb, const SvListTerms *lt)
{
	float		tau = vb->tau;
	int			m;

	if (lt->wide)
	{
		/* every entry is scored in double */
		for (int i = 0; i < n; i++)
			vb->bw.idx[i] = i;
		return n;
	}
	sv_page_sums(meta, pa->page, n, vb->bw.tables, vb->bw.sums);
	/* a hair above the k-th best, so float rounding never drops a tie */
	if (isfinite(tau))
		tau += 1e-6f * fabsf(tau) + 1e-30f;
	m = (int) sv_kernels.fs_select(vb->bw.sums, n, vb->soff, pa->alpha, vb->is_l2 ? pa->r2 : NULL, lt->base,
								   lt->f, lt->c0, lt->c1, tau, vb->bw.idx);
	vb->kept += m;
	if (m < n)
		vb->overflow = true;	/* entries beyond the k-th best exist (or were taken before) */
	return m;
}

/*
 * The estimate of entry i of a page (its arrays in pa) with the quantized weights: from the kernel's sum in
 * float, or in double when the float form overflows; -Infinity when the entry's factors are unknown (its
 * row is read).  A wide list scores in double with the float weights (scaled), every entry.
 */
static inline double
sv_entry_estimate(const SvMetaData *meta, const SvPageArrays *pa, int i, SvVecBatch *vb, const SvListTerms *lt)
{
	const float *alpha = pa->alpha;
	const float *r2 = pa->r2;
	double		ws,
				est;

	if (unlikely(!isfinite(alpha[i]) || (vb->is_l2 && !isfinite(r2[i]))))
		return -INFINITY;		/* unknown: the row is read, its exact distance decides */
	if (!lt->wide)
	{
		float		e = sv_fs_bound(vb->bw.sums[i], vb->soff, alpha[i], vb->is_l2 ? r2[i] : 0.0f, lt->base, lt->f,
									lt->c0, lt->c1);

		if (isfinite(e))
			return e;
		/* the float form overflowed: in double */
		ws = (double) vb->fq.delta * (2.0 * ((double) (int32) vb->bw.sums[i] - vb->soff) - (double) vb->fq.vsum) /
			lt->wscale;
	}
	else
	{
		float		s;

		sv_page_get_code(pa->page, meta, i, vb->code);
		s = sv_kernels.masked_sum(vb->w, vb->code, meta->code_bits);
		ws = (2.0 * (double) s - (double) vb->wsum) / lt->wscale;
	}
	est = vb->is_l2 ? lt->based + (double) r2[i] - 2.0 * (double) alpha[i] * ws
		: lt->based - (double) alpha[i] * ws;
	return isnan(est) ? -INFINITY : est;
}

/*
 * Room in the candidate buffer beyond the k candidates: k more, as far as work_mem allows besides the k
 * candidates and their exact rows (scan.c's check), and at least 64.
 */
static int
sv_buffer_room(int k)
{
	Size		budget = (Size) work_mem * 1024;
	Size		used = (Size) k * (sizeof(SvCandidate) + sizeof(SvExact));
	Size		room = budget > used ? (budget - used) / sizeof(SvCandidate) : 0;

	return (int) Max((Size) 64, Min((Size) k, room));
}

/* Swap two candidates. */
static inline void
sv_swap(SvCandidate *a, SvCandidate *b)
{
	SvCandidate t = *a;

	*a = *b;
	*b = t;
}

/*
 * Put the best k of n candidates (by sv_worse: score, then TID; a strict order) in a[0 .. k), in no
 * particular order: quickselect with a median-of-three pivot.
 */
static void
sv_select_best(SvCandidate *a, int n, int k)
{
	int			lo = 0,
				hi = n - 1;

	while (hi > lo)
	{
		int			mid = lo + (hi - lo) / 2;
		int			i = lo,
					j = hi;
		SvCandidate pivot;

		/* the median of a[lo], a[mid], a[hi] as the pivot */
		if (sv_worse(&a[lo], &a[mid]))
			sv_swap(&a[lo], &a[mid]);
		if (sv_worse(&a[mid], &a[hi]))
			sv_swap(&a[mid], &a[hi]);
		if (sv_worse(&a[lo], &a[mid]))
			sv_swap(&a[lo], &a[mid]);
		pivot = a[mid];
		while (i <= j)
		{
			while (sv_worse(&pivot, &a[i]))
				i++;
			while (sv_worse(&a[j], &pivot))
				j--;
			if (i <= j)
				sv_swap(&a[i++], &a[j--]);
		}
		/* a[lo .. j] are no worse than the pivot, a[i .. hi] no better, a[j + 1 .. i - 1] equal to it */
		if (k - 1 <= j)
			hi = j;
		else if (k - 1 >= i)
			lo = i;
		else
			break;
	}
}

/* Keep the best k of the buffer's candidates; their worst score becomes tau. */
static void
sv_compact(SvVecBatch *vb)
{
	SvCandidate *a = vb->bw.heap;
	float		worst = -INFINITY;

	if (vb->nheap <= vb->k)
		return;
	sv_select_best(a, vb->nheap, vb->k);
	vb->nheap = vb->k;
	vb->overflow = true;
	for (int i = 0; i < vb->k; i++)
		if (a[i].score > worst)
			worst = a[i].score;
	vb->tau = worst;
}

/*
 * Score one page of a list: the entries the kernel keeps (estimate at most the k-th best, or not a finite
 * number) are offered to the heap with their estimates.
 */
static void
sv_scan_vector_page(SvScanOpaque *so, Page page, SvVecBatch *vb, const SvListTerms *lt)
{
	const SvMetaData *meta = &so->cache->meta;
	int			n = SvPageGetOpaque(page)->count;
	ItemPointerData *tids = sv_page_tids(page, meta);
	SvPageArrays pa = {page, sv_page_codes(page, meta), sv_page_alpha(page, meta), sv_page_r2(page, meta)};
	const BlockNumber *rblocks = sv_page_refine_blocks(page);
	SvCandidate *heap = vb->bw.heap;
	int			m;

	if (n == 0)
		return;
	m = sv_page_select(meta, &pa, n, vb, lt);
	for (int j = 0; j < m; j++)
	{
		int			i = vb->bw.idx[j];
		float		score = sv_score(sv_entry_estimate(meta, &pa, i, vb, lt));

		SvCandidate *c;

		if (score > vb->tau)
		{
			vb->overflow = true;
			continue;
		}
		if (!sv_after_bound(so, lt->list, score, &tids[i]))
			continue;
		if (vb->nheap == vb->cap)
			sv_compact(vb);
		c = &heap[vb->nheap++];
		c->score = score;
		c->tid = tids[i];
		c->rblk = vb->rcap > 0 ? rblocks[i / vb->rcap] : InvalidBlockNumber;
		c->rslot = (uint16) (vb->rcap > 0 ? i % vb->rcap : 0);
	}
}

/*
 * Vector opclasses: the best k entries of the window's lists by the asymmetric estimate (svindex.h) of
 * the quantized query, after what earlier batches took.  The kernel sums give the inner product of the
 * code's signs with the quantized query (or query - centroid), so they give every entry's estimate: the
 * SIMD threshold test keeps the entries whose estimate is at most the k-th best (a hair above, for
 * float rounding), and only those reach the top-k heap.  The quantized query's estimate is within
 * alpha * err_l1 of the float query's (kernels.h), as RaBitQ's quantized query is.
 *
 * Extreme values (finite floats whose squares overflow): an entry whose stored factors overflowed (alpha
 * or r2 infinite) has an unknown estimate, -Infinity: it is never skipped and always read (its exact
 * distance decides).  The kernel skips only entries whose estimate is a finite number above the k-th
 * best.  An estimate that overflows float is recomputed in double.  A wide list (sv_list_wide) is scored
 * in double with the float weights scaled by a power of two, every entry, without the kernel's test.
 */
void
sv_scan_vectors(IndexScanDesc scan, int k)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	const SvMetaData *meta = &so->cache->meta;
	SvVecBatch	vb;

	vb.bw = sv_batch_work(meta, k);
	vb.k = k;
	vb.cap = k + sv_buffer_room(k);
	vb.bw.heap = repalloc(vb.bw.heap, sizeof(SvCandidate) * vb.cap);
	vb.tau = get_float4_infinity();
	vb.nheap = 0;
	vb.kept = 0;
	vb.overflow = false;
	vb.code = palloc(meta->code_bytes);
	vb.rcap = meta->refine_bits > 0 ? meta->refine_capacity : 0;
	sv_query_weights(so, &vb);

	for (int p = 0; p < so->nprobe; p++)
	{
		int			list = so->probe_lists[p];
		SvListTerms lt;
		SvChain		chain;
		Page		page;

		if (so->bound_state[list] == SV_BOUND_ALL)
			continue;			/* every entry went into earlier batches */
		sv_list_terms(so, list, &vb, &lt);
		sv_chain_start(&chain, scan->indexRelation,
					   sv_read_list_cached(scan->indexRelation, meta, list, true).first);
		while ((page = sv_chain_next(&chain)) != NULL)
			sv_scan_vector_page(so, page, &vb, &lt);
	}
	so->kept += vb.kept;
	sv_compact(&vb);
	sv_finish_batch(so, vb.bw.heap, vb.nheap, vb.overflow);
	sv_batch_work_free(&vb.bw);
	pfree(vb.code);
	pfree(vb.w);
}
