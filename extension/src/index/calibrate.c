/*
 * calibrate.c: the scan settings a vector index chooses for itself at build (WITH (target_recall = R),
 * 0.95 by default): the lists to probe and the shortlist that reach recall R on the table's own rows.
 *
 * The sampling pass already holds a uniform sample of the rows (rotated coded floats).  Up to
 * SV_CALIB_QUERIES of them, spread evenly over the sample, are held out of k-means and serve as queries
 * (a row k-means was fitted to finds its neighbours in its own list more often than a new row does);
 * all the sample's rows are the data.
 * For each query: its exact top SV_CALIB_K in the sample (over the coded dims), the order in which a scan
 * would probe the lists, and every sample row's 1-bit estimate, as the scan scores it.  A true neighbour
 * is found with p probes and a shortlist of s when its list is among the first p and fewer than s rows
 * of the table rank before it by estimate in those lists: its rank among the sample's rows, times
 * rows / sampled rows.  Of the (probes, shortlist) pairs of a small grid that reach the aim, the build
 * keeps the cheapest by a cost model of the scan (codes read, rows or refine codes read); when none
 * does, the one of highest recall.  The recall the chosen pair reached on the sample is kept beside it
 * (shrinkvec_index_info).
 *
 * The aim is half the misses R allows (0.975 for 0.95): real queries are seldom rows of the table, and
 * their neighbours are farther from them than a row's are (on the docstrings, the 10th neighbour's
 * cosine is 0.53 for a query and 0.60 for a row), so a query misses more than a row does at the same
 * settings.  The benchmarks (bench/bench_geometry.py) compare the choice with the recall of real queries.  The refine stage and
 * the exact rerank are taken as lossless over the shortlist (they are, within 0.002, on every bench set).
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "build.h"

#define SV_CALIB_QUERIES 100	/* sample rows used as queries */
#define SV_CALIB_K 10			/* neighbours per query */
#define SV_CALIB_MIN_SAMPLE 200 /* fewer sampled rows: no calibration (the defaults) */

/* Probes tried, as fractions of the lists, and shortlists tried. */
static const double sv_calib_probe_share[] = {0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 1.0};
static const int sv_calib_shortlists[] = {50, 100, 150, 200, 300, 400, 600, 800, 1200, 1600};

#define SV_CALIB_NPROBES lengthof(sv_calib_probe_share)
#define SV_CALIB_NSHORT lengthof(sv_calib_shortlists)

/* One sampled row as the calibration sees it. */
typedef struct SvCalibRow
{
	int			list;			/* its nearest list */
	float		alpha;			/* the sign code's scale */
	double		r2;				/* |x - c|^2 */
	double		x2;				/* |x|^2 */
	bool		usable;			/* finite, and not so long that the float arithmetic overflows */
} SvCalibRow;

/*
 * The scan's cost of a (probes, shortlist) pair, in nanoseconds, as measured by bench/bench_scan_engine.py
 * (issue 29: the docstrings, 28k rows of 384 dims, flat, 2026-12): about 3 ns per code of 56 bytes (its
 * code and factors) scanned, and 1 us per shortlisted candidate (a heap row read; 0.8 us with refine
 * codes, whose scoring costs a refine page each and reads a fifth of the rows).  Issue 28's scan cost
 * 5 ns per 40 bytes.
 */
static double
sv_calib_cost(const SvMetaData *meta, double rows, int probes, int shortlist)
{
	double		per_code = (meta->code_bytes + 2 * sizeof(float)) / 18.0;
	double		per_candidate = meta->refine_bits > 0 ? 800.0 : 1000.0;

	return rows * probes / meta->lists * per_code + shortlist * per_candidate;
}

/* The exact distance of the index's kind between coded floats (dot = <q, x>, norms squared). */
static double
sv_calib_exact(int kind, double dot, double q2, double x2)
{
	if (kind == SV_KIND_L2)
		return q2 + x2 - 2.0 * dot;
	if (kind == SV_KIND_IP)
		return -dot;
	return 1.0 - dot;
}

/*
 * Move the calibration's query rows, spread evenly over the sample, to its end (before k-means, which
 * then learns from the others); returns how many (0: the sample is too small to calibrate on).
 */
int
sv_calibrate_hold_out(SvBuildState *bs, double target)
{
	int			m = bs->nsample;
	int			nq = Min(SV_CALIB_QUERIES, m / 10);
	char	   *tmp;

	if (target <= 0 || m < SV_CALIB_MIN_SAMPLE || bs->meta.elemtype == SV_ELEM_BIT ||
		m - nq < bs->meta.lists)
		return 0;
	if (bs->meta.lists == 1 || m - nq < SV_CALIB_MIN_ROWS_PER_LIST * bs->meta.lists)
		return nq;				/* a flat mean, or too few rows a list to spare any: they stay in k-means */
	tmp = palloc(bs->item_bytes);
	for (int qi = 0; qi < nq; qi++)
	{
		char	   *a = bs->sample + (Size) ((int64) qi * (m - nq) / nq) * bs->item_bytes;
		char	   *b = bs->sample + (Size) (m - nq + qi) * bs->item_bytes;

		memcpy(tmp, a, bs->item_bytes);
		memcpy(a, b, bs->item_bytes);
		memcpy(b, tmp, bs->item_bytes);
	}
	pfree(tmp);
	return nq;
}

/*
 * Choose meta's probes and shortlist for recall target from the sample bs->sample, whose last nq rows
 * were held out of k-means (sv_calibrate_hold_out; vector opclasses).
 */
void
sv_calibrate(SvBuildState *bs, double target, int nq)
{
	SvMetaData *meta = &bs->meta;
	int			m = bs->nsample;
	int			dim = meta->code_bits;
	int			nbytes = meta->code_bytes;
	double		scale = (double) bs->seen / Max(m, 1);
	const float *cents = (const float *) bs->cache.centroids;
	int			probes[SV_CALIB_NPROBES];
	SvCalibRow *rows;
	uint8	   *codes;
	int		   *lists;
	float	   *qs,
			   *qc,
			   *dots,
			   *w;
	uint8	   *pcodes,
			   *tables;
	uint32	   *sums;
	int		   *perm,
			   *lstart;
	double	   *est;
	int		   *listrank,
			   *order;
	double	   *lscore;
	uint8	   *bucket;
	double	   *found;			/* per (probe option, neighbour): its scaled rank, or +Inf when not probed */
	int			nfound = 0;
	double		best_cost = INFINITY;
	int			best_p = -1,
				best_s = -1;
	double		best_recall = 0;
	double		aim;

	meta->calib_probes = 0;
	meta->calib_shortlist = 0;
	meta->calib_recall = 0;
	if (nq <= 0)
		return;
	aim = 1.0 - (1.0 - target) / 2;
	for (int p = 0; p < (int) SV_CALIB_NPROBES; p++)
		probes[p] = Max(1, (int) ceil(sv_calib_probe_share[p] * meta->lists));

	/* encode the sample as the index will: list, sign code, alpha and r2 */
	rows = palloc(sizeof(SvCalibRow) * m);
	codes = palloc((Size) m * nbytes);
	lists = palloc(sizeof(int) * m);
	if (meta->lists > 1)
		sv_nearest_centroids(cents, bs->cache.centroid_norm2, meta->lists, dim, (const float *) bs->sample, m,
							 lists);
	else
		memset(lists, 0, sizeof(int) * m);
	for (int j = 0; j < m; j++)
	{
		const float *x = (const float *) (bs->sample + (Size) j * bs->item_bytes);
		const float *c = cents + (Size) lists[j] * dim;
		float		alpha,
					r2;
		uint8	   *code = codes + (Size) j * nbytes;

		sv_encode(meta, x, c, code, &alpha, &r2);
		rows[j].list = lists[j];
		rows[j].alpha = alpha;
		rows[j].r2 = r2;
		rows[j].x2 = sv_kernels.dot(x, x, dim);
		rows[j].usable = isfinite(alpha) && isfinite(r2) && sv_norm2_safe((float) rows[j].x2);
	}

	/* the codes grouped by list (rows perm[lstart[l] .. lstart[l + 1]) of list l), for the kernel's sums */
	perm = palloc(sizeof(int) * m);
	lstart = palloc0(sizeof(int) * (meta->lists + 1));
	for (int j = 0; j < m; j++)
		lstart[lists[j] + 1]++;
	for (int l = 0; l < meta->lists; l++)
		lstart[l + 1] += lstart[l];
	{
		int		   *fill = palloc(sizeof(int) * meta->lists);

		memcpy(fill, lstart, sizeof(int) * meta->lists);
		for (int j = 0; j < m; j++)
			perm[fill[lists[j]]++] = j;
		pfree(fill);
	}
	pcodes = palloc((Size) m * nbytes);
	for (int i = 0; i < m; i++)
		memcpy(pcodes + (Size) i * nbytes, codes + (Size) perm[i] * nbytes, nbytes);
	tables = palloc(SV_FS_TABLE_BYTES(nbytes));
	sums = palloc(sizeof(uint32) * m);
	w = palloc(sizeof(float) * dim);
	qs = palloc(sizeof(float) * m);
	qc = palloc(sizeof(float) * meta->lists);
	dots = palloc(sizeof(float) * m);
	est = palloc(sizeof(double) * m);
	listrank = palloc(sizeof(int) * meta->lists);
	order = palloc(sizeof(int) * meta->lists);
	lscore = palloc(sizeof(double) * meta->lists);
	bucket = palloc(m);
	found = palloc(sizeof(double) * SV_CALIB_NPROBES * nq * SV_CALIB_K);

	for (int qi = 0; qi < nq; qi++)
	{
		int			self = m - nq + qi;
		const float *q = (const float *) (bs->sample + (Size) self * bs->item_bytes);
		double		q2 = sv_kernels.dot(q, q, dim);
		int			top[SV_CALIB_K];
		double		topd[SV_CALIB_K];
		int			ntop = 0;
		CHECK_FOR_INTERRUPTS();
		if (!rows[self].usable)
			continue;
		/* the exact top K of the other rows, by insertion into a sorted array */
		for (int j = 0; j < m; j++)
		{
			double		dj;
			int			at;

			dots[j] = sv_kernels.dot(q, (const float *) (bs->sample + (Size) j * bs->item_bytes), dim);
			if (j == self || !rows[j].usable)
				continue;
			dj = sv_calib_exact(meta->kind, dots[j], q2, rows[j].x2);
			if (ntop == SV_CALIB_K && dj >= topd[ntop - 1])
				continue;
			at = ntop < SV_CALIB_K ? ntop++ : ntop - 1;
			while (at > 0 && topd[at - 1] > dj)
			{
				topd[at] = topd[at - 1];
				top[at] = top[at - 1];
				at--;
			}
			topd[at] = dj;
			top[at] = j;
		}
		if (ntop < SV_CALIB_K)
			continue;

		/* the order a scan probes the lists in (scan_lists.c): by <q, c> for IP, else by |q - c|^2 */
		for (int l = 0; l < meta->lists; l++)
		{
			qc[l] = sv_kernels.dot(q, cents + (Size) l * dim, dim);
			lscore[l] = meta->kind == SV_KIND_IP ? -qc[l] : bs->cache.centroid_norm2[l] - 2.0 * qc[l];
		}
		sv_order_lists(lscore, meta->lists, order);
		for (int l = 0; l < meta->lists; l++)
			listrank[order[l]] = l;

		/*
		 * Every row's 1-bit estimate as the scan makes it (scan_vectors.c): <w, s> of the quantized weights
		 * w (the query; for L2, query - centroid, per list) from the kernel's sums, then <q, x> ~ <q, c> +
		 * alpha <q, s>, or for L2 |q - x|^2 ~ |q - c|^2 + r2 - 2 alpha <q - c, s>.
		 */
		for (int l = 0; l < meta->lists; l++)
		{
			int			n = lstart[l + 1] - lstart[l];
			SvFsQuery	fq;

			if (n == 0 || (l > 0 && meta->kind != SV_KIND_L2))
				continue;
			if (meta->kind == SV_KIND_L2)
			{
				const float *c = cents + (Size) l * dim;

				for (int d = 0; d < dim; d++)
					w[d] = q[d] - c[d];
			}
			else
				memcpy(w, q, sizeof(float) * dim);
			sv_fs_tables_ip(w, dim, nbytes, tables, &fq);
			if (meta->kind == SV_KIND_L2)
				sv_fs_scan_lanes(pcodes + (Size) lstart[l] * nbytes, n, 1, nbytes, tables, sums + lstart[l]);
			else
				sv_fs_scan_lanes(pcodes, m, 1, nbytes, tables, sums);
			for (int i = (meta->kind == SV_KIND_L2 ? lstart[l] : 0); i < (meta->kind == SV_KIND_L2 ? lstart[l + 1] : m); i++)
				qs[perm[i]] = fq.delta * (2.0f * (float) ((int32) sums[i] - 2 * SV_FS_BIAS * nbytes) - (float) fq.vsum);
		}
		for (int j = 0; j < m; j++)
		{
			const SvCalibRow *r = &rows[j];
			double		qsv = qs[j];

			if (meta->kind == SV_KIND_L2)
				est[j] = q2 - 2.0 * qc[r->list] + bs->cache.centroid_norm2[r->list] + r->r2 - 2.0 * r->alpha * qsv;
			else
				est[j] = sv_calib_exact(meta->kind, qc[r->list] + r->alpha * qsv, 0, 0);
		}

		/* each row's first probe option that reaches its list (options ascend), or NPROBES for none */
		for (int j = 0; j < m; j++)
		{
			int			p = 0;

			while (p < (int) SV_CALIB_NPROBES && listrank[rows[j].list] >= probes[p])
				p++;
			bucket[j] = (uint8) p;
		}
		/* each neighbour's scaled rank by estimate among the rows of the first p lists */
		for (int t = 0; t < SV_CALIB_K; t++)
		{
			int			nt = top[t];
			double		et = est[nt];
			int			before[SV_CALIB_NPROBES + 1] = {0};

			for (int j = 0; j < m; j++)
				if (est[j] < et || (est[j] == et && j < nt))
					before[bucket[j]]++;
			before[bucket[self]] -= est[self] < et || (est[self] == et && self < nt);
			for (int p = 1; p < (int) SV_CALIB_NPROBES; p++)
				before[p] += before[p - 1];
			for (int p = 0; p < (int) SV_CALIB_NPROBES; p++)
				found[(Size) p * nq * SV_CALIB_K + nfound] = bucket[nt] <= p ? before[p] * scale : INFINITY;
			nfound++;
		}
	}

	/* the cheapest pair that reaches the target, else the most thorough */
	for (int p = 0; p < (int) SV_CALIB_NPROBES && nfound > 0; p++)
		for (int s = 0; s < (int) SV_CALIB_NSHORT; s++)
		{
			int			hits = 0;
			double		recall,
						cost;

			for (int i = 0; i < nfound; i++)
				hits += found[(Size) p * nq * SV_CALIB_K + i] < sv_calib_shortlists[s];
			recall = (double) hits / nfound;
			cost = sv_calib_cost(meta, (double) bs->seen, probes[p], sv_calib_shortlists[s]);
			if ((recall >= aim && cost < best_cost) || (best_cost == INFINITY && recall > best_recall))
			{
				if (recall >= aim)
					best_cost = cost;
				best_p = p;
				best_s = s;
				best_recall = recall;
			}
		}
	if (best_p >= 0)
	{
		meta->calib_probes = probes[best_p];
		meta->calib_shortlist = sv_calib_shortlists[best_s];
		meta->calib_recall = (float) best_recall;
	}
	pfree(rows);
	pfree(codes);
	pfree(lists);
	pfree(perm);
	pfree(lstart);
	pfree(pcodes);
	pfree(tables);
	pfree(sums);
	pfree(w);
	pfree(qs);
	pfree(qc);
	pfree(dots);
	pfree(est);
	pfree(listrank);
	pfree(order);
	pfree(lscore);
	pfree(bucket);
	pfree(found);
}
