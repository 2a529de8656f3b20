/*
 * index_insert.c: adding a row to a shrinkvec index after the build.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "svindex.h"
#include "shrinkvec.h"

/* Encode one new row and add it to the list nearest to it. */
bool
sv_aminsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
			Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
			IndexInfo *indexInfo)
{
	SvIndexCache *cache;
	const SvMetaData *meta;
	MemoryContext cxt,
				old;
	uint8	   *code;
	float		alpha = 0,
				r2 = 0;
	int			list;
	SvRefine	refine = {0};

	if (isnull[0])
		return false;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "shrinkvec insert", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	cache = sv_index_cache(index);
	meta = &cache->meta;
	code = palloc0(meta->code_bytes);
	if (meta->elemtype == SV_ELEM_BIT)
	{
		sv_encode_bits(meta, values[0], code);
		list = sv_nearest_list(cache, NULL, code);
	}
	else
	{
		float	   *x = palloc(sizeof(float) * meta->code_bits);
		bool		unknown;

		sv_datum_to_floats(values[0], meta->elemtype, meta->kind, meta->dims, meta->code_bits, x, &unknown);
		list = sv_nearest_list(cache, x, NULL);
		sv_encode(meta, x, (const float *) cache->centroids + (Size) list * meta->code_bits, code, &alpha, &r2);
		if (meta->refine_bits > 0)
		{
			refine.code = palloc(meta->refine_bytes);
			sv_refine_encode(meta, x, (const float *) cache->centroids + (Size) list * meta->code_bits, &refine);
		}
		if (unknown)
			sv_mark_unknown(&alpha, meta->refine_bits > 0 ? &refine : NULL);
	}
	sv_insert_entry(index, cache, list, code, alpha, r2, &refine, heap_tid);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return false;
}
