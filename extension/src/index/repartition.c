/*
 * repartition.c: an index whose lists follow its table.  An index made on an empty or small table has
 * one list (flat), and a list grows with every insert into it; scans read ever more codes.  When the
 * index holds SV_REPARTITION_GROWTH (2) times the rows of its last partitioning and the row count calls for more lists (build.c:
 * sv_auto_list_count), VACUUM (or autovacuum, or ANALYZE in autovacuum) re-partitions it: the same work
 * as CREATE INDEX, from the index's own entries instead of a table scan, into new pages, while inserts
 * and scans go on.  Doubling keeps the total work within about twice one build of the final table
 * (bench/README.md, "Growth": 2x against 4x measured; 4x costs less but leaves the calibration stale longer).
 *
 * A re-partition, under the table's ShareUpdateExclusiveLock (no VACUUM of the table runs beside it):
 *   1. collect the TIDs of every entry, page by page, noting each page's count;
 *   2. fetch a sample of those rows (any version some snapshot may still see: a non-vacuumable snapshot;
 *      a version dead to all is dropped, its TOAST chunks may be gone already; a TID whose row is gone is dead to all and
 *      dropped), learn centroids and calibrate as a build does, then encode every row into new pages
 *      (build_load.c), the meta page untouched: scans and inserts still use the old generation;
 *   3. walk the old chains again, mark each full page retired under its exclusive lock (no insert can
 *      write a full page, and no VACUUM removes entries meanwhile) and take the entries added to it since
 *      step 1; mark the old centroid, coarse and directory pages; encode those entries;
 *   4. take the re-partition lock (svindex.h), do the same for the pages not yet retired (those inserts
 *      may still write: usually the last page of each list), encode their late entries, and write the new
 *      meta page (generation + 1, one WAL record): the switch.  Inserts wait only for this step.
 * An insert that meets a retired page waits for the re-partition lock, then inserts into the generation
 * the meta page names (insert.c).  A scan copies the cached meta data and centroids at rescan and reads
 * the generation it started with (retired pages stay intact).  The retired pages are recycled (SV_PAGE_FREE,
 * in the FSM) by a later VACUUM once no snapshot older than the switch remains, as nbtree recycles
 * deleted pages: every scan that could still read them holds such a snapshot.  A crash or an error before
 * the switch leaves the old generation in place (pages marked retired by the failed attempt are still
 * used; an insert clears a mark it meets).  The new pages of an attempt that fails with an error are freed
 * again (VACUUM then reports the error as a WARNING and goes on: the next VACUUM tries again); a crash
 * before the switch leaves them unreferenced until REINDEX.
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/pg_class.h"
#include "commands/vacuum.h"
#include "executor/executor.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "miscadmin.h"
#include "postmaster/autovacuum.h"
#include "utils/resowner.h"

#include "build.h"

PG_FUNCTION_INFO_V1(shrinkvec_index_repartition);

/* A data page of the old generation as step 1 saw it. */
typedef struct SvSeenPage
{
	BlockNumber blk;
	int			count;
} SvSeenPage;

/* State of one re-partition. */
typedef struct SvRepartition
{
	SnapshotData nonvacuumable; /* the versions some snapshot may still see (GlobalVisTestFor the table) */
	Relation	heap;
	Relation	index;
	IndexInfo  *info;
	SvMetaData	old;			/* the generation being replaced */
	SvSeenPage *pages;
	int			npages;
	int			maxpages;
	ItemPointerData *tids;
	int64		ntids;
	int64		maxtids;
	/* reading rows */
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	EState	   *estate;
	int64		dropped;		/* entries whose rows are gone */
} SvRepartition;

/* Append a TID to the state's array. */
static void
sv_rp_add_tid(SvRepartition *rp, ItemPointer tid)
{
	if (rp->ntids == rp->maxtids)
	{
		rp->maxtids = Max(1024, rp->maxtids * 2);
		rp->tids = rp->tids == NULL ? MemoryContextAllocHuge(CurrentMemoryContext, rp->maxtids * sizeof(ItemPointerData)) :
			repalloc_huge(rp->tids, rp->maxtids * sizeof(ItemPointerData));
	}
	rp->tids[rp->ntids++] = *tid;
}

/* Step 1: the TIDs of every entry of the old generation, and each data page's count. */
static void
sv_rp_collect(SvRepartition *rp)
{
	const SvMetaData *meta = &rp->old;

	for (int list = 0; list < meta->lists; list++)
	{
		BlockNumber blk = sv_read_list(rp->index, meta, list).first;

		while (blk != InvalidBlockNumber)
		{
			Buffer		buf = ReadBuffer(rp->index, blk);
			Page		page;
			int			n;

			CHECK_FOR_INTERRUPTS();
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			n = SvPageGetOpaque(page)->count;
			if (rp->npages == rp->maxpages)
			{
				rp->maxpages = Max(64, rp->maxpages * 2);
				rp->pages = rp->pages == NULL ? palloc(sizeof(SvSeenPage) * rp->maxpages) :
					repalloc(rp->pages, sizeof(SvSeenPage) * rp->maxpages);
			}
			rp->pages[rp->npages].blk = blk;
			rp->pages[rp->npages++].count = n;
			for (int i = 0; i < n; i++)
				sv_rp_add_tid(rp, &sv_page_tids(page, meta)[i]);
			blk = SvPageGetOpaque(page)->next;
			UnlockReleaseBuffer(buf);
		}
	}
}

/* qsort order of ItemPointerData. */
static int
sv_rp_tid_cmp(const void *a, const void *b)
{
	return ItemPointerCompare((ItemPointer) a, (ItemPointer) b);
}

/* qsort and bsearch order of SvSeenPage by block. */
static int
sv_rp_page_cmp(const void *a, const void *b)
{
	BlockNumber x = ((const SvSeenPage *) a)->blk,
				y = ((const SvSeenPage *) b)->blk;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Sort TIDs into heap order and drop repeated ones (an index entry too many is healed here). */
static int64
sv_rp_sort_tids(ItemPointerData *tids, int64 n)
{
	int64		out = 0;

	if (n == 0)
		return 0;
	qsort(tids, n, sizeof(ItemPointerData), sv_rp_tid_cmp);
	for (int64 i = 1; i < n; i++)
		if (!ItemPointerEquals(&tids[i], &tids[out]))
			tids[++out] = tids[i];
	return out + 1;
}

/*
 * Remove from the sorted, distinct tids[0..n) those in the sorted taken[0..ntaken); returns the new count.
 * Step 4 takes the entries of pages step 3 already took again when an insert cleared a page's retired mark
 * meanwhile (insert.c treats a mark in its own generation as left by a failed attempt): a page new since
 * step 1 has no count to start after.
 */
static int64
sv_rp_minus(ItemPointerData *tids, int64 n, const ItemPointerData *taken, int64 ntaken)
{
	int64		out = 0,
				j = 0;

	for (int64 i = 0; i < n; i++)
	{
		while (j < ntaken && ItemPointerCompare((ItemPointer) &taken[j], &tids[i]) < 0)
			j++;
		if (j < ntaken && ItemPointerEquals((ItemPointer) &taken[j], &tids[i]))
			continue;
		tids[out++] = tids[i];
	}
	return out;
}

/*
 * The indexed value of the row at tid: the last version of its HOT chain (not yet dead to every snapshot:
 * a version that is may have lost its TOAST chunks to a VACUUM of the TOAST table; followed from the
 * root as an index scan does); false when no tuple is there any more (pruned: dead to every snapshot).
 * The last version, not the first: a chain that CREATE INDEX found broken (a HOT update changed the
 * column before the index existed) starts with versions of another value, and the index entry stands for
 * the versions after the break, which all have the value of the last one.
 */
static bool
sv_rp_fetch(SvRepartition *rp, ItemPointer tid, Datum *value, bool *isnull)
{
	ItemPointerData t = *tid;
	bool		call_again = false,
				all_dead = false,
				found = false;
	ExprContext *econtext = GetPerTupleExprContext(rp->estate);

	Form_pg_attribute key = TupleDescAttr(RelationGetDescr(rp->index), 0);

	ResetExprContext(econtext);
	for (;;)
	{
		MemoryContext old;

		/* a call that finds no more versions overwrites the slot's tuple header: the value is copied first */
		if (!table_index_fetch_tuple(rp->fetch, &t, &rp->nonvacuumable, rp->slot, &call_again, &all_dead))
			break;
		econtext->ecxt_scantuple = rp->slot;
		FormIndexDatum(rp->info, rp->slot, rp->estate, value, isnull);
		old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
		if (!*isnull)
			*value = datumCopy(*value, key->attbyval, key->attlen);
		MemoryContextSwitchTo(old);
		found = true;
		if (!call_again)
			break;
	}
	ExecClearTuple(rp->slot);
	return found;
}

/* Encode the rows at tids[0..n) into the new generation (their values read from the table). */
static void
sv_rp_load(SvRepartition *rp, SvBuildState *bs, ItemPointerData *tids, int64 n)
{
	for (int64 i = 0; i < n; i++)
	{
		Datum		value;
		bool		isnull;

		if ((i & 255) == 0)
		{
#if PG_VERSION_NUM >= 180000
			vacuum_delay_point(false);
#else
			vacuum_delay_point();
#endif
			CHECK_FOR_INTERRUPTS();
		}
		if (!sv_rp_fetch(rp, &tids[i], &value, &isnull) || isnull)
		{
			rp->dropped++;
			continue;
		}
		sv_load_callback(rp->index, &tids[i], &value, &isnull, true, bs);
	}
	if (bs->npending > 0)
		sv_flush_pending(bs);
}

/*
 * Step 2's sample: a selection sample (Knuth's algorithm S, fixed seed) of the TIDs in heap order, fed to
 * the build's sampling callback; bs->seen is then the number of rows the lists are chosen for.
 */
static void
sv_rp_sample(SvRepartition *rp, SvBuildState *bs)
{
	int64		needed;
	pg_prng_state prng;

	bs->item_bytes = bs->meta.elemtype == SV_ELEM_BIT ? bs->meta.code_bytes : bs->meta.centroid_bytes;
	bs->sample_target = sv_sample_target(bs, rp->heap, rp->index);
	if (sv_auto_lists(rp->index, &bs->meta))
	{
		/* sqrt of the entries rather than of the table's estimate, within maintenance_work_mem as a build */
		Size		budget = (Size) maintenance_work_mem * 1024 / bs->item_bytes;
		double		want = Min((double) 32 * sqrt((double) rp->ntids * 1.5), (double) budget);

		bs->sample_target = Max(bs->sample_target, (int) Min(want, (double) INT_MAX / 2));
	}
	bs->sample = MemoryContextAllocHuge(CurrentMemoryContext, (Size) bs->sample_target * bs->item_bytes);
	pg_prng_seed(&bs->prng, 0x5356);
	pg_prng_seed(&prng, 0x5357);
	needed = Min(bs->sample_target, rp->ntids);
	for (int64 i = 0; i < rp->ntids && needed > 0; i++)
	{
		Datum		value;
		bool		isnull;

		if (pg_prng_uint64_range(&prng, 0, rp->ntids - i - 1) >= (uint64) needed)
			continue;
		needed--;
		if (sv_rp_fetch(rp, &rp->tids[i], &value, &isnull))
			sv_sample_callback(rp->index, &rp->tids[i], &value, &isnull, true, bs);
	}
	bs->seen = rp->ntids;
}

/* Mark one page retired from generation gen (WAL-logged), unless it is already. */
static void
sv_rp_retire_page(Relation index, BlockNumber blk, uint32 gen)
{
	Buffer		buf = ReadBuffer(index, blk);
	GenericXLogState *state;
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	SvPageGetOpaque(page)->retired = sv_retire_tag(gen);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/* Mark npages pages from start retired (a stream: centroids, coarse level, directory). */
static void
sv_rp_retire_stream(Relation index, BlockNumber start, int npages, uint32 gen)
{
	if (start == InvalidBlockNumber)
		return;
	for (int p = 0; p < npages; p++)
		sv_rp_retire_page(index, start + p, gen);
}

/*
 * Mark an old data page retired (and its refine pages), collecting into late the entries added to it since
 * step 1; with only_full, a page with room is left as it is.  buf is pinned, not locked, and is released.
 * Returns the page's next link, read under the exclusive lock: once a page is retired no insert extends
 * the chain from it.
 */
static BlockNumber
sv_rp_retire_data(SvRepartition *rp, SvRepartition *late, Buffer buf, bool only_full)
{
	const SvMetaData *meta = &rp->old;
	uint16		tag = sv_retire_tag(meta->generation);
	SvSeenPage	key = {BufferGetBlockNumber(buf), 0};
	SvSeenPage *seen = bsearch(&key, rp->pages, rp->npages, sizeof(SvSeenPage), sv_rp_page_cmp);
	BlockNumber rblocks[SV_MAX_REFINE_PAGES];
	BlockNumber next;
	GenericXLogState *state;
	Page		page;
	int			n;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	n = SvPageGetOpaque(page)->count;
	if (SvPageGetOpaque(page)->retired == tag || (only_full && n < meta->capacity))
	{
		next = SvPageGetOpaque(page)->next;
		UnlockReleaseBuffer(buf);
		return next;
	}
	state = GenericXLogStart(rp->index);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	for (int i = seen != NULL ? seen->count : 0; i < n; i++)
		sv_rp_add_tid(late, &sv_page_tids(page, meta)[i]);
	if (seen != NULL)
		seen->count = n;		/* taken: an insert that clears the mark (insert.c) adds only after n */
	SvPageGetOpaque(page)->retired = tag;
	memcpy(rblocks, sv_page_refine_blocks(page), sizeof(rblocks));
	next = SvPageGetOpaque(page)->next;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
	/* no insert reaches these refine pages now: their data page is retired */
	if (meta->refine_bits > 0)
		for (int r = 0; r < SV_MAX_REFINE_PAGES; r++)
			if (rblocks[r] != InvalidBlockNumber)
				sv_rp_retire_page(rp->index, rblocks[r], meta->generation);
	return next;
}

/*
 * Steps 3 and 4's walk over the old chains: retire the data pages (only the full ones with only_full: no
 * insert writes those), collecting their late entries.  A page already retired is read for its link only.
 */
static void
sv_rp_retire_chains(SvRepartition *rp, SvRepartition *late, bool only_full)
{
	const SvMetaData *meta = &rp->old;
	uint16		tag = sv_retire_tag(meta->generation);

	for (int list = 0; list < meta->lists; list++)
	{
		BlockNumber blk = sv_read_list(rp->index, meta, list).first;

		while (blk != InvalidBlockNumber)
		{
			Buffer		buf = ReadBuffer(rp->index, blk);
			SvPageOpaque *opaque;

			CHECK_FOR_INTERRUPTS();
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			opaque = SvPageGetOpaque(BufferGetPage(buf));
			if (opaque->retired == tag)
			{
				blk = opaque->next;		/* retired: its link no longer changes */
				UnlockReleaseBuffer(buf);
				continue;
			}
			LockBuffer(buf, BUFFER_LOCK_UNLOCK);
			blk = sv_rp_retire_data(rp, late, buf, only_full);
		}
	}
}

/* Step 4: the new meta page, one WAL record. */
static void
sv_rp_switch(Relation index, const SvMetaData *meta)
{
	Buffer		buf = ReadBuffer(index, SV_META_BLKNO);
	GenericXLogState *state;
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	memcpy(SvPageGetMeta(page), meta, sizeof(SvMetaData));
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/*
 * Re-partition the index (see the top of this file).  heap is the index's table, locked by the caller in
 * ShareUpdateExclusiveLock or stronger.  Every block taken for the new generation goes into allocated;
 * *switched is set once the new meta page is written.  Returns the new generation's meta data.
 */
static SvMetaData
sv_repartition(Relation heap, Relation index, SvBlockList *allocated, bool *switched)
{
	SvRepartition rp = {0};
	SvRepartition late = {0};
	SvBuildState bs;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "shrinkvec re-partition", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	SvMetaData	result;

	rp.heap = heap;
	rp.index = index;
	rp.info = BuildIndexInfo(index);
	rp.old = sv_index_cache(index)->meta;
	rp.estate = CreateExecutorState();
	rp.slot = table_slot_create(heap, NULL);
	rp.fetch = table_index_fetch_begin(heap);
	InitNonVacuumableSnapshot(rp.nonvacuumable, GlobalVisTestFor(heap));

	/* 1: the entries */
	sv_rp_collect(&rp);
	rp.ntids = sv_rp_sort_tids(rp.tids, rp.ntids);
	qsort(rp.pages, rp.npages, sizeof(SvSeenPage), sv_rp_page_cmp);

	/* 2: centroids from a sample, then every entry encoded into new pages */
	sv_build_init(&bs, index);
	bs.keep_meta = true;
	bs.allocated = allocated;
	if (bs.meta.centroid_bytes > 0)
	{
		sv_rp_sample(&rp, &bs);
		if (!sv_auto_lists(index, &bs.meta))
			bs.meta.lists = (int) Min((int64) bs.meta.lists, Max(bs.nsample, 1));
		sv_centroids_from_sample(&bs, index);
	}
	sv_write_layout(&bs, MAIN_FORKNUM);
	bs.cache.meta = bs.meta;
	if (bs.meta.elemtype != SV_ELEM_BIT)
		bs.pending_x = palloc(sizeof(float) * SV_BUILD_BATCH * bs.meta.code_bits);
	sv_rp_load(&rp, &bs, rp.tids, rp.ntids);

	/* 3: the full pages and the streams, while inserts go on */
	sv_rp_retire_chains(&rp, &late, true);
	sv_rp_retire_stream(index, rp.old.centroid_start, rp.old.centroid_pages, rp.old.generation);
	sv_rp_retire_stream(index, rp.old.coarse_start, rp.old.coarse_pages, rp.old.generation);
	sv_rp_retire_stream(index, rp.old.directory_start, rp.old.directory_pages, rp.old.generation);
	late.ntids = sv_rp_sort_tids(late.tids, late.ntids);
	sv_rp_load(&rp, &bs, late.tids, late.ntids);

	/* 4: the pages inserts may still write, and the switch; inserts that meet a retired page wait */
	sv_lock_repartition(index, ExclusiveLock);
	{
		SvRepartition last = {0};

		sv_rp_retire_chains(&rp, &last, false);
		last.ntids = sv_rp_sort_tids(last.tids, last.ntids);
		last.ntids = sv_rp_minus(last.tids, last.ntids, late.tids, late.ntids);
		sv_rp_load(&rp, &bs, last.tids, last.ntids);
		late.ntids += last.ntids;
	}
	sv_finish_layout(&bs, MAIN_FORKNUM);
	bs.meta.version = SV_INDEX_VERSION;
	bs.meta.generation = rp.old.generation + 1;
	bs.meta.retired_xid = U64FromFullTransactionId(ReadNextFullTransactionId());
	bs.meta.last_repartition = GetCurrentTimestamp();
	sv_rp_switch(index, &bs.meta);
	*switched = true;
	sv_unlock_repartition(index, ExclusiveLock);

	ereport(DEBUG1,
			(errmsg("shrinkvec index \"%s\" re-partitioned: %d lists for %lld entries (was %d lists), generation %u; %lld late entries, %lld of dead rows dropped",
					RelationGetRelationName(index), bs.meta.lists, (long long) bs.indexed, rp.old.lists,
					bs.meta.generation, (long long) late.ntids, (long long) rp.dropped)));
	result = bs.meta;
	table_index_fetch_end(rp.fetch);
	ExecDropSingleTupleTableSlot(rp.slot);
	FreeExecutorState(rp.estate);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return result;
}

/* Free the blocks a failed re-partition took (never referenced by the index): SV_PAGE_FREE, in the FSM. */
static void
sv_rp_free_blocks(Relation index, const SvBlockList *allocated)
{
	for (int i = 0; i < allocated->n; i++)
	{
		Buffer		buf = ReadBuffer(index, allocated->blocks[i]);
		GenericXLogState *state;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		sv_page_init(GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE), SV_PAGE_FREE, 0);
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
		RecordFreeIndexPage(index, allocated->blocks[i]);
	}
	IndexFreeSpaceMapVacuum(index);
}

/*
 * sv_repartition in an internal subtransaction.  On an error before the switch, the blocks it took are
 * freed; then the error is raised again, or, in VACUUM (report_only), reported as a WARNING so that the
 * VACUUM goes on (a cancel is always raised again).  Returns whether the index was re-partitioned.
 */
static bool
sv_repartition_guarded(Relation heap, Relation index, bool report_only, SvMetaData *out)
{
	MemoryContext outer = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	SvBlockList *allocated = palloc0(sizeof(SvBlockList));
	volatile bool switched = false;
	bool		done = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(outer);
	PG_TRY();
	{
		*out = sv_repartition(heap, index, allocated, (bool *) &switched);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = owner;
		done = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(outer);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = owner;
		if (!switched)
			sv_rp_free_blocks(index, allocated);
		if (!report_only || edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("shrinkvec index \"%s\" was not re-partitioned: %s", RelationGetRelationName(index),
						edata->message),
				 errhint("The index stays as it was; the next VACUUM tries again.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	if (allocated->blocks != NULL)
		pfree(allocated->blocks);
	pfree(allocated);
	return done;
}

/*
 * The entry count from which the index is due for a re-partition, or -1 for never: SV_REPARTITION_GROWTH times the rows of its
 * last partitioning (build or re-partition), and enough rows to call for more lists than it has: over
 * 20,000 rows and sqrt(rows) rounding above its lists (build.c: sv_auto_list_count), or with WITH (lists
 * = N), more rows than lists while it has fewer than N.
 */
int64
sv_repartition_at(Relation index, const SvMetaData *meta)
{
	SvOptions  *opts = (SvOptions *) index->rd_options;
	int			lists = opts ? opts->lists : 0;
	int64		at = SV_REPARTITION_GROWTH * meta->build_rows;

	if (meta->lists >= SV_INDEX_MAX_LISTS)
		return -1;
	if (lists == 0 && meta->elemtype != SV_ELEM_BIT)
	{
		/* rint(sqrt(n)) > lists exactly when n >= (lists + 0.5)^2 */
		at = Max(at, SV_AUTO_FLAT_ROWS + 1);
		at = Max(at, (int64) ceil(((double) meta->lists + 0.5) * ((double) meta->lists + 0.5)));
		return at;
	}
	if (Max(lists, 1) <= meta->lists)
		return -1;
	return Max(at, (int64) meta->lists + 1);
}

/* Is a re-partition due for an index of meta holding entries entries? */
bool
sv_repartition_due(Relation index, const SvMetaData *meta, int64 entries)
{
	int64		at = sv_repartition_at(index, meta);

	return at >= 0 && entries >= at;
}

/*
 * Recycle the pages retired by past re-partitions once no snapshot from before the last switch remains:
 * each becomes an SV_PAGE_FREE page in the FSM (sv_new_buffer takes it).  VACUUM calls it.
 */
static void
sv_recycle_retired(Relation index, Relation heap, BufferAccessStrategy strategy)
{
	SvMetaData	meta;
	BlockNumber nblocks;
	Buffer		buf;
	GenericXLogState *state;

	/* the meta page itself: a cached copy may still show a mark another VACUUM cleared */
	buf = ReadBuffer(index, SV_META_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(&meta, SvPageGetMeta(BufferGetPage(buf)), sizeof(SvMetaData));
	UnlockReleaseBuffer(buf);
	if (meta.retired_xid == 0 || !GlobalVisCheckRemovableFullXid(heap, FullTransactionIdFromU64(meta.retired_xid)))
		return;
	nblocks = RelationGetNumberOfBlocks(index);
	for (BlockNumber blk = SV_META_BLKNO + 1; blk < nblocks; blk++)
	{
		Page		page;

#if PG_VERSION_NUM >= 180000
		vacuum_delay_point(false);
#else
		vacuum_delay_point();
#endif
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, strategy);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		/*
		 * Retired from an older generation, or left by a re-partition a crash interrupted (a claimed page
		 * never written, or one never initialised): no re-partition runs beside VACUUM, so none is in use.
		 */
		if (PageIsNew(page) ||
			(SvPageGetOpaque(page)->flags != SV_PAGE_FREE &&
			 (sv_page_stale(page, &meta) || SvPageGetOpaque(page)->flags == SV_PAGE_RESERVED)))
		{
			state = GenericXLogStart(index);
			page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
			sv_page_init(page, SV_PAGE_FREE, 0);
			GenericXLogFinish(state);
		}
		page = BufferGetPage(buf);
		if (!PageIsNew(page) && SvPageGetOpaque(page)->flags == SV_PAGE_FREE)
			RecordFreeIndexPage(index, blk);
		UnlockReleaseBuffer(buf);
	}
	IndexFreeSpaceMapVacuum(index);

	/* nothing waits now: clear the mark (under the re-partition lock, which orders meta page writes) */
	sv_lock_repartition(index, ExclusiveLock);
	buf = ReadBuffer(index, SV_META_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	SvPageGetMeta(GenericXLogRegisterBuffer(state, buf, 0))->retired_xid = 0;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
	sv_unlock_repartition(index, ExclusiveLock);
}

/*
 * Does a re-partition of entries entries fit in maintenance_work_mem (the TIDs, and a page and centroid a
 * list, as a build checks)?  When not, VACUUM says so and leaves the index as it is.
 */
static bool
sv_repartition_fits(Relation index, int64 entries)
{
	const SvMetaData *meta = &sv_index_cache(index)->meta;
	SvOptions  *opts = (SvOptions *) index->rd_options;
	int64		lists = opts != NULL && opts->lists > 0 ? opts->lists : sv_auto_list_count(entries);
	double		need = (double) entries * sizeof(ItemPointerData) +
		(double) lists * ((meta->refine_bits > 0 ? 2 : 1) * BLCKSZ + meta->code_bits * sizeof(float) + 64);

	if (need <= (double) maintenance_work_mem * 1024)
		return true;
	ereport(AmAutoVacuumWorkerProcess() ? LOG : WARNING,
			(errmsg("shrinkvec index \"%s\" was not re-partitioned: its %lld entries in %lld lists need %.0f kB, more than maintenance_work_mem (%d kB)",
					RelationGetRelationName(index), (long long) entries, (long long) lists, need / 1024, maintenance_work_mem),
			 errhint("Raise maintenance_work_mem (autovacuum_work_mem does not apply) or REINDEX.")));
	return false;
}

/*
 * VACUUM's part (amvacuumcleanup): recycle retired pages, and re-partition when due.  Lazy VACUUM runs no
 * user code (its snapshot does not hold back other backends' horizons), so an index on an expression is
 * left to shrinkvec_index_repartition(); entries is the index's entry count.
 */
void
sv_vacuum_growth(IndexVacuumInfo *info, int64 entries)
{
	Relation	index = info->index;
	Relation	heap = NULL;
	bool		opened = false;

#if PG_VERSION_NUM >= 160000
	heap = info->heaprel;
#endif
	if (heap == NULL)
	{
		heap = table_open(IndexGetRelation(RelationGetRelid(index), false), NoLock);
		opened = true;
	}
	sv_recycle_retired(index, heap, info->strategy);
	if (!sv_repartition_due(index, &sv_index_cache(index)->meta, entries) ||
		BuildIndexInfo(index)->ii_Expressions != NIL)
		;
#if PG_VERSION_NUM < 170000
	else if (IsInParallelMode())
		/* a parallel VACUUM's leader: PostgreSQL 15-16 start no subtransaction in parallel mode */
		ereport(AmAutoVacuumWorkerProcess() ? LOG : WARNING,
				(errmsg("shrinkvec index \"%s\" was not re-partitioned: VACUUM runs in parallel",
						RelationGetRelationName(index)),
				 errhint("Run VACUUM (PARALLEL 0) on the table, or SELECT shrinkvec_index_repartition('%s').",
						 RelationGetRelationName(index))));
#endif
	else if (sv_repartition_fits(index, entries))
	{
		SvMetaData	meta;

		(void) sv_repartition_guarded(heap, index, true, &meta);
	}
	if (opened)
		table_close(heap, NoLock);
}

/*
 * shrinkvec_index_repartition(index): re-partition now, whether due or not (for operators, and for an
 * index on an expression, which VACUUM leaves alone).  The caller must own the table; index expressions
 * run as its owner with a safe search_path, as in VACUUM.  Returns the new number of lists.
 */
Datum
shrinkvec_index_repartition(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	Oid			heapoid = sv_index_table(indexoid, "shrinkvec_index_repartition");
	Relation	heap;
	Relation	index;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	SvMetaData	meta;

	/* check before taking the lock that VACUUM takes: another AM's index (a catalog's) is refused first */
	heap = table_open(heapoid, AccessShareLock);
#if PG_VERSION_NUM >= 160000
	if (!object_ownercheck(RelationRelationId, heapoid, GetUserId()))
#else
	if (!pg_class_ownercheck(heapoid, GetUserId()))
#endif
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, RelationGetRelationName(heap));
	index = index_open(indexoid, AccessShareLock);
	if (index->rd_indam == NULL || index->rd_indam->amgettuple != sv_amgettuple)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("index \"%s\" is not a shrinkvec index", RelationGetRelationName(index))));
	if (RELATION_IS_OTHER_TEMP(heap))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot re-partition temporary indexes of other sessions")));
	/* no VACUUM of the table (and no other re-partition) beside this one; inserts and scans go on */
	LockRelationOid(heapoid, ShareUpdateExclusiveLock);
	LockRelationOid(indexoid, RowExclusiveLock);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(heap->rd_rel->relowner, save_sec_context | SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
#if PG_VERSION_NUM >= 170000
	RestrictSearchPath();
#else
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
#endif
	(void) sv_repartition_guarded(heap, index, false, &meta);
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	index_close(index, NoLock);
	table_close(heap, NoLock);
	PG_RETURN_INT32(meta.lists);
}
