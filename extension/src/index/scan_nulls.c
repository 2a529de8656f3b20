/*
 * scan_nulls.c: the rows an ordered scan returns after every entry of the index: those whose indexed
 * value is NULL.  The index holds no entry for them, but the exact plan returns them last (a NULL distance
 * sorts after every other), so a filter whose only matches have a NULL vector gets them through the index
 * too.
 *
 * Once the index is exhausted, the scan reads the table page by page under its snapshot (a bulk-read
 * ring, as a sequential scan does), computes each visible row's indexed value (FormIndexDatum, as the
 * exact stage does; the index's predicate for a partial index) and returns the root TID of the HOT chain
 * of each row whose value is NULL, with a NULL distance.  The page's lock is held only to see which
 * tuples are visible; the values are computed with the page pinned, as an index fetch does.  The
 * executor fetches each TID and applies its filters, as for every other row.
 *
 * The tail costs a read of the table, but it runs only when the executor wanted more rows than the index
 * has entries: a filter that rejected them all (the scan read every entry already), or a LIMIT above the
 * row count.  A scan stopped by shrinkvec.max_scan_tuples has no tail.  Tables of other access methods
 * than heap have none either (their rows with a NULL value are not returned).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"

#include "scan.h"

/* Prepare the tail: the table's size now, a bulk-read ring, the partial index's predicate. */
static void
sv_nulls_begin(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	MemoryContext old;

	sv_begin_fetch(scan);
	old = MemoryContextSwitchTo(so->parent);
	if (!so->tail_prepared && so->index_info->ii_Predicate != NIL)
		so->tail_predicate = ExecPrepareQual(so->index_info->ii_Predicate, so->estate);
	so->tail_prepared = true;	/* once a scan: a rescan keeps it */
	if (so->tail_strategy == NULL)
		so->tail_strategy = GetAccessStrategy(BAS_BULKREAD);
	MemoryContextSwitchTo(old);
	so->tail_tids = MemoryContextAlloc(so->cxt, sizeof(ItemPointerData) * MaxHeapTuplesPerPage);
	so->tail_nblocks = RelationGetNumberOfBlocks(scan->heapRelation);
	/* as a sequential scan of the table: a serializable transaction conflicts with any later insert */
	PredicateLockRelation(scan->heapRelation, scan->xs_snapshot);
	so->tail_blk = 0;
	so->tail_n = so->tail_pos = 0;
	so->tail_started = true;
}

/* Is the row in the scan's slot one of the index's (its predicate holds) with a NULL indexed value? */
static bool
sv_null_row(SvScanOpaque *so)
{
	ExprContext *econtext = GetPerTupleExprContext(so->estate);
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];

	ResetPerTupleExprContext(so->estate);
	econtext->ecxt_scantuple = so->slot;
	if (so->tail_predicate != NULL && !ExecQual(so->tail_predicate, econtext))
		return false;
	FormIndexDatum(so->index_info, so->slot, so->estate, values, isnull);
	return isnull[0];
}

/* Collect the root TIDs of one heap page's visible rows whose indexed value is NULL into tail_tids. */
static void
sv_nulls_page(IndexScanDesc scan, BlockNumber blk)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	Relation	heap = scan->heapRelation;
	OffsetNumber roots[MaxHeapTuplesPerPage];
	OffsetNumber visible[MaxHeapTuplesPerPage];
	int			nvisible = 0;
	Buffer		buf;
	Page		page;
	OffsetNumber maxoff;

	buf = ReadBufferExtended(heap, MAIN_FORKNUM, blk, RBM_NORMAL, so->tail_strategy);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	maxoff = PageIsNew(page) ? InvalidOffsetNumber : PageGetMaxOffsetNumber(page);
	if (maxoff != InvalidOffsetNumber)
		heap_get_root_tuples(page, roots);
	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
	{
		ItemId		lp = PageGetItemId(page, off);
		HeapTupleData tup;

		if (!ItemIdIsNormal(lp) || roots[off - 1] == InvalidOffsetNumber)
			continue;
		tup.t_data = (HeapTupleHeader) PageGetItem(page, lp);
		tup.t_len = ItemIdGetLength(lp);
		tup.t_tableOid = RelationGetRelid(heap);
		ItemPointerSet(&tup.t_self, blk, off);
		if (HeapTupleSatisfiesVisibility(&tup, scan->xs_snapshot, buf))
			visible[nvisible++] = off;
	}
	LockBuffer(buf, BUFFER_LOCK_UNLOCK);

	/* the pin keeps the visible tuples in place (pruning needs a cleanup lock) while their values are computed */
	so->tail_n = so->tail_pos = 0;
	for (int i = 0; i < nvisible; i++)
	{
		ItemId		lp = PageGetItemId(page, visible[i]);
		HeapTupleData tup;

		CHECK_FOR_INTERRUPTS();
		tup.t_data = (HeapTupleHeader) PageGetItem(page, lp);
		tup.t_len = ItemIdGetLength(lp);
		tup.t_tableOid = RelationGetRelid(heap);
		ItemPointerSet(&tup.t_self, blk, visible[i]);
		ExecStoreBufferHeapTuple(&tup, so->slot, buf);
		if (sv_null_row(so))
			ItemPointerSet(&so->tail_tids[so->tail_n++], blk, roots[visible[i] - 1]);
	}
	ExecClearTuple(so->slot);
	ReleaseBuffer(buf);
}

/*
 * The next row whose indexed value is NULL, after every entry of the index (false at the table's end):
 * its root TID with a NULL distance.
 */
bool
sv_next_null_row(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;

	if (!so->tail_started)
	{
		if (scan->heapRelation == NULL || scan->heapRelation->rd_tableam != GetHeapamTableAmRoutine())
			return false;
		sv_nulls_begin(scan);
	}
	while (so->tail_pos >= so->tail_n)
	{
		if (so->tail_blk >= so->tail_nblocks)
			return false;
		CHECK_FOR_INTERRUPTS();
		sv_nulls_page(scan, so->tail_blk++);
	}
	scan->xs_heaptid = so->tail_tids[so->tail_pos++];
	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	for (int i = 0; i < scan->numberOfOrderBys; i++)
	{
		scan->xs_orderbyvals[i] = (Datum) 0;
		scan->xs_orderbynulls[i] = true;
	}
	return true;
}

/* Release what the tail holds (at the end of the scan). */
void
sv_nulls_end(SvScanOpaque *so)
{
	if (so->tail_strategy != NULL)
		FreeAccessStrategy(so->tail_strategy);
	so->tail_strategy = NULL;
}
