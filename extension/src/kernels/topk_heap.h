/*
 * topk_heap.h: the one bounded max-heap of the extension ("the k best so far, the worst on top"),
 * written once and instantiated for each entry layout, like PostgreSQL's lib/sort_template.h.
 *
 * Before including, define:
 *   TOPK_PREFIX          name prefix of the generated functions (e.g. sv_cand gives sv_cand_sift_down)
 *   TOPK_WORSE(h, i, j)  nonzero when entry i is worse than entry j (a strict total order: ties broken)
 * and either
 *   TOPK_ELEM            the entry type of a heap that is an array of entries (TOPK_ELEM *), swapped whole
 * or, for another layout (e.g. parallel arrays),
 *   TOPK_HEAP            the type the functions take for the heap
 *   TOPK_SWAP(h, i, j)   exchange entries i and j
 * The macros are undefined at the end, so the header can be included again for another layout.
 * Free of PostgreSQL headers: the kernels use it too.
 */
#include <stddef.h>

#define TOPK_CONCAT_(a, b) a##_##b
#define TOPK_CONCAT(a, b) TOPK_CONCAT_(a, b)
#define TOPK_FN(name) TOPK_CONCAT(TOPK_PREFIX, name)

#ifdef TOPK_ELEM
#define TOPK_HEAP TOPK_ELEM *
#define TOPK_SWAP(h, i, j) TOPK_FN(swap) (h, i, j)

/* Exchange entries i and j of an array heap. */
static inline void
TOPK_FN(swap) (TOPK_ELEM *h, size_t i, size_t j)
{
	TOPK_ELEM	t = h[i];

	h[i] = h[j];
	h[j] = t;
}
#endif

/* Restore the max-heap property downwards from position i of a heap of n entries. */
static inline void
TOPK_FN(sift_down) (TOPK_HEAP h, size_t n, size_t i)
{
	for (;;)
	{
		size_t		l = 2 * i + 1,
					r = l + 1,
					m = i;

		if (l < n && TOPK_WORSE(h, l, m))
			m = l;
		if (r < n && TOPK_WORSE(h, r, m))
			m = r;
		if (m == i)
			return;
		TOPK_SWAP(h, i, m);
		i = m;
	}
}

/* Restore the max-heap property upwards from position i (an entry just appended at i). */
static inline void
TOPK_FN(sift_up) (TOPK_HEAP h, size_t i)
{
	while (i > 0 && TOPK_WORSE(h, i, (i - 1) / 2))
	{
		TOPK_SWAP(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

/* Sort a heap of n entries in place, best first (heap sort: the worst moves to the end each step). */
static inline void
TOPK_FN(sort) (TOPK_HEAP h, size_t n)
{
	for (size_t end = n; end > 1; end--)
	{
		TOPK_SWAP(h, 0, end - 1);
		TOPK_FN(sift_down) (h, end - 1, 0);
	}
}

#undef TOPK_FN
#undef TOPK_CONCAT
#undef TOPK_CONCAT_
#undef TOPK_PREFIX
#undef TOPK_ELEM
#undef TOPK_HEAP
#undef TOPK_WORSE
#undef TOPK_SWAP
