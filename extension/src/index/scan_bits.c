/*
 * scan_bits.c: a batch of a bit_hamming_ops scan: the best k entries by (Hamming distance, TID).
 */
#include "postgres.h"

#include "scan.h"

/*
 * bit_hamming_ops: the best k entries of the window's lists by exact Hamming distance (the query's
 * prefix), after what earlier batches took.  Each page goes through the nibble-table kernel with
 * Hamming tables and a SIMD threshold test against the current k-th best; only the entries that pass
 * reach the top-k heap.
 */
void
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
		sv_chain_start(&chain, scan->indexRelation,
					   sv_read_list_cached(scan->indexRelation, meta, list, true).first);
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
