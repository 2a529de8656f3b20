/*
 * build.c: CREATE INDEX for the shrinkvec access method (build.h lists the build files).
 *
 * One heap pass samples rows (reservoir, fixed seed) for the centroids, then a second pass encodes
 * every row and appends it to its list.  Each list fills one page in memory at a time; a full page
 * is written to a block reserved for it when the previous page of the list was written, so every
 * chain is linked first to last without rewriting pages.
 */
#include "postgres.h"

#include "access/heaptoast.h"

#include "build.h"

/*
 * Refuse a build whose centroids and per-list pages (held in memory until the last row is written)
 * exceed maintenance_work_mem; the k-means sample is bounded separately (it shrinks to fit).
 */
static void
sv_check_build_memory(Relation index, const SvMetaData *meta)
{
	Size		per_list = (Size) meta->centroid_bytes + BLCKSZ + sizeof(SvListEntry) + 2 * sizeof(BlockNumber) +
		sizeof(Page) + sizeof(float);
	Size		need;
	Size		have = (Size) maintenance_work_mem * 1024;

	if (meta->refine_bits > 0)
		per_list += BLCKSZ + sizeof(Page) + sizeof(BlockNumber);	/* its in-memory refine page */
	need = (Size) meta->lists * per_list;

	if (need > have)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("shrinkvec index \"%s\" with %d lists needs %zu kB for its centroids and list pages, "
						"more than maintenance_work_mem (%d kB)",
						RelationGetRelationName(index), meta->lists, need / 1024, maintenance_work_mem),
				 errhint("Raise maintenance_work_mem to at least %zu kB, or build with fewer lists.",
						 need / 1024 + 1)));
}

/* The lists of an index whose lists follow the row count: 1 up to SV_AUTO_FLAT_ROWS rows, then sqrt(rows). */
int
sv_auto_list_count(int64 rows)
{
	return rows <= SV_AUTO_FLAT_ROWS ? 1 : (int) Min((double) SV_INDEX_MAX_LISTS, rint(sqrt((double) rows)));
}

/* Does the index take its lists from the row count (a vector opclass without WITH (lists = ...))? */
bool
sv_auto_lists(Relation index, const SvMetaData *meta)
{
	SvOptions  *opts = (SvOptions *) index->rd_options;

	return meta->elemtype != SV_ELEM_BIT && (opts == NULL || opts->lists == 0);
}

/*
 * How many rows to sample for the centroids: at least 10000 (64 a list for bits, 32 for vectors), the
 * square root of the estimated rows when the lists follow the row count, within maintenance_work_mem.
 */
int
sv_sample_target(SvBuildState *bs, Relation heap, Relation index)
{
	int			per_list = bs->meta.elemtype == SV_ELEM_BIT ? 64 : 32;
	Size		budget = (Size) maintenance_work_mem * 1024 / bs->item_bytes;
	int			target = Max(10000, per_list * bs->meta.lists);

	if (sv_auto_lists(index, &bs->meta))
	{
		/* lists follow the row count: sample for the square root of the estimated rows */
		BlockNumber pages;
		double		tuples,
					allvisfrac;

		estimate_rel_size(heap, NULL, &pages, &tuples, &allvisfrac);
		if (tuples > SV_AUTO_FLAT_ROWS)
			target = Max(target, (int) Min((double) per_list * sqrt(tuples * 1.5), (double) INT_MAX / 2));
	}
	if ((Size) target > budget)
		target = Max((int) budget, bs->meta.lists);
	return target;
}

/* Fewer sampled rows than lists (a small or empty table): as many lists as rows, and say so. */
static void
sv_fewer_lists(SvBuildState *bs, Relation index)
{
	int			lists = Max(bs->nsample, 1);

	if (bs->meta.lists > 1)
		ereport(NOTICE,
				(errmsg("shrinkvec index \"%s\" has %d list%s instead of %d: the table has %d rows",
						RelationGetRelationName(index), lists, lists == 1 ? "" : "s", bs->meta.lists, bs->nsample),
				 errdetail("VACUUM (and autovacuum) re-partitions it into %d lists once it holds more than %d rows.",
						   bs->meta.lists, Max(SV_REPARTITION_GROWTH * bs->nsample, lists + 1))));
	bs->meta.lists = lists;
	if (bs->meta.elemtype == SV_ELEM_BIT && lists == 1)
		bs->meta.centroid_bytes = 0;
}

/*
 * A NOTICE when the indexed column's values are stored out of line (TOAST): a vector or halfvec column
 * whose values exceed TOAST_TUPLE_THRESHOLD under a storage that moves them out (EXTENDED, EXTERNAL,
 * pgvector's default).  Every row a scan reranks then costs a TOAST index lookup and chunk reads: issue
 * 29 measured 9.8 us a row at 768 dims against 2.4 us with STORAGE PLAIN.
 */
static void
sv_notice_toast(Relation heap, Relation index, IndexInfo *indexInfo, const SvMetaData *meta)
{
	AttrNumber	attnum = indexInfo->ii_IndexAttrNumbers[0];
	Form_pg_attribute att;
	Size		bytes;

	if (meta->elemtype == SV_ELEM_BIT || attnum <= 0)
		return;					/* bit codes are small; an expression is computed, not stored */
	att = TupleDescAttr(RelationGetDescr(heap), attnum - 1);
	bytes = (Size) meta->dims * (meta->elemtype == SV_ELEM_HALFVEC ? 2 : 4) + 8;
	if (bytes <= TOAST_TUPLE_THRESHOLD || (att->attstorage != TYPSTORAGE_EXTENDED && att->attstorage != TYPSTORAGE_EXTERNAL))
		return;
	ereport(NOTICE,
			(errmsg("column \"%s\" keeps its %d-dimension values out of line (TOAST): every row a scan of \"%s\" reranks costs a TOAST lookup",
					NameStr(att->attname), meta->dims, RelationGetRelationName(index)),
			 errhint("ALTER TABLE %s ALTER COLUMN %s SET STORAGE PLAIN keeps values of up to about 2,000 dimensions in the row (rows written before it move at their next update or a VACUUM FULL).",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(heap)),
												RelationGetRelationName(heap)),
					 quote_identifier(NameStr(att->attname)))));
}

/*
 * The centroids learned from bs->sample (bs->nsample rows of bs->seen): the lists from the row count when
 * they follow it, the calibration's rows held out of k-means, probes and shortlist chosen for the target.
 */
void
sv_centroids_from_sample(SvBuildState *bs, Relation index)
{
	int			held,
				all_rows;

	if (sv_auto_lists(index, &bs->meta))
		bs->meta.lists = sv_auto_list_count(bs->seen);
	if (bs->nsample < bs->meta.lists)
		sv_fewer_lists(bs, index);
	sv_check_build_memory(index, &bs->meta);
	bs->cache.meta = bs->meta;
	held = sv_calibrate_hold_out(bs, bs->meta.calib_target);
	all_rows = bs->nsample;
	if (bs->meta.lists > 1 && bs->nsample - held >= SV_CALIB_MIN_ROWS_PER_LIST * bs->meta.lists)
		bs->nsample -= held;	/* k-means learns from the others (a flat mean takes every row) */
	sv_learn_centroids(bs);
	bs->nsample = all_rows;
	sv_calibrate(bs, bs->meta.calib_target, held);
	bs->cache.meta = bs->meta;
	pfree(bs->sample);
	bs->sample = NULL;
}

/* The sampling pass and the centroids learned from it (lists from the row count when they follow it). */
static void
sv_build_centroids(SvBuildState *bs, Relation heap, Relation index, IndexInfo *indexInfo)
{
	bs->item_bytes = bs->meta.elemtype == SV_ELEM_BIT ? bs->meta.code_bytes : bs->meta.centroid_bytes;
	bs->sample_target = sv_sample_target(bs, heap, index);
	bs->sample = MemoryContextAllocHuge(CurrentMemoryContext, (Size) bs->sample_target * bs->item_bytes);
	pg_prng_seed(&bs->prng, 0x5356);
	table_index_build_scan(heap, index, indexInfo, false, true, sv_sample_callback, bs, NULL);
	sv_centroids_from_sample(bs, index);
	if (sv_auto_lists(index, &bs->meta) && bs->meta.lists == 1)
		ereport(NOTICE,
				(errmsg("shrinkvec index \"%s\" is flat (1 list) for its %lld rows",
						RelationGetRelationName(index), (long long) bs->seen),
				 errdetail("VACUUM (and autovacuum) re-partitions it into about sqrt(rows) lists once it holds more than %d rows, and again each time its rows double; shrinkvec_index_info shows when (repartition_at).",
						   SV_AUTO_FLAT_ROWS)));
}

/* Build the index: sample, learn centroids, then encode every row. */
IndexBuildResult *
sv_ambuild(Relation heap, Relation index, IndexInfo *indexInfo)
{
	SvBuildState bs;
	IndexBuildResult *result;
	double		reltuples;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	sv_build_init(&bs, index);
	sv_notice_toast(heap, index, indexInfo, &bs.meta);

	if (!sv_auto_lists(index, &bs.meta))
		sv_check_build_memory(index, &bs.meta);	/* WITH (lists = N): before reading the table */
	if (bs.meta.centroid_bytes > 0)
		sv_build_centroids(&bs, heap, index, indexInfo);

	ereport(DEBUG1, (errmsg("shrinkvec index build: centroids of %d lists learnt from %d sampled rows",
							bs.meta.lists, bs.nsample)));
	sv_write_layout(&bs, MAIN_FORKNUM);
	bs.cache.meta = bs.meta;
	if (bs.meta.elemtype != SV_ELEM_BIT)
		bs.pending_x = palloc(sizeof(float) * SV_BUILD_BATCH * bs.meta.code_bits);
#if PG_VERSION_NUM >= 170000
	if (!sv_build_parallel(&bs, heap, index, indexInfo, &reltuples))
#endif
	{
		reltuples = table_index_build_scan(heap, index, indexInfo, true, true, sv_load_callback, &bs, NULL);
		if (bs.npending > 0)
			sv_flush_pending(&bs);
	}
	sv_finish_layout(&bs, MAIN_FORKNUM);

	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = reltuples;
	result->index_tuples = (double) bs.indexed;
	MemoryContextDelete(bs.tmpcxt);
	return result;
}

/* Build an empty index in the init fork (unlogged tables): one list, zero centroid. */
void
sv_ambuildempty(Relation index)
{
	SvBuildState bs;

	sv_build_init(&bs, index);
	bs.meta.lists = 1;
	if (bs.meta.elemtype == SV_ELEM_BIT)
		bs.meta.centroid_bytes = 0;
	bs.cache.meta = bs.meta;
	sv_learn_centroids(&bs);
	sv_write_layout(&bs, INIT_FORKNUM);
	sv_finish_layout(&bs, INIT_FORKNUM);
	MemoryContextDelete(bs.tmpcxt);
}
