/*
 * scan_vectors.c: a batch of a vector opclass scan: the best k entries by the asymmetric estimate of
 * the float query against the sign codes, computed by the FastScan kernel and bounded per page.
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
 * Vector opclasses: the best k entries of the window's lists by the asymmetric estimate (svindex.h),
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
void
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
