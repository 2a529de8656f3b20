/*
 * scan_pool.c: the pool of a vector scan after its first batch: fetched rows in a min-heap by exact
 * distance, released once no unread entry can be nearer.
 */
#include "postgres.h"

#include "scan.h"

/* Is exact row a before b: smaller distance (NaN last), then TID? */
static inline bool
sv_exact_before(const SvExact *a, const SvExact *b)
{
	return sv_exact_cmp(a, b) < 0;
}

/* The pool is the extension's one heap template with the nearest row on top. */
#define TOPK_PREFIX sv_pool
#define TOPK_ELEM SvExact
#define TOPK_WORSE(h, i, j) sv_exact_before(&(h)[i], &(h)[j])
#include "kernels/topk_heap.h"

/* Push a row onto the pool (a binary min-heap). */
void
sv_pool_push(SvScanOpaque *so, const SvExact *e)
{
	if (so->pool_n == so->pool_cap)
	{
		so->pool_cap = Max(64, so->pool_cap * 2);
		so->pool = so->pool == NULL ? palloc(sizeof(SvExact) * so->pool_cap)
			: repalloc(so->pool, sizeof(SvExact) * so->pool_cap);
	}
	so->pool[so->pool_n] = *e;
	sv_pool_sift_up(so->pool, so->pool_n++);
}

/* Pop the nearest row of the pool. */
SvExact
sv_pool_pop(SvScanOpaque *so)
{
	SvExact		top = so->pool[0];

	so->pool[0] = so->pool[--so->pool_n];
	sv_pool_sift_down(so->pool, so->pool_n, 0);
	return top;
}

