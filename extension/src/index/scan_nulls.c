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
 * row count.  Its rows count against shrinkvec.max_scan_tuples with the entries: reaching it ends the
 * tail with the same NOTICE.  No tail where no row can have a NULL value: an index on a NOT NULL column,
 * or a partial index whose predicate implies the value IS NOT NULL (pgvector's usual `WHERE embedding IS
 * NOT NULL`).  No tail either after a scan stopped by shrinkvec.max_scan_tuples, under a snapshot that is
 * not MVCC (a HOT chain could show two visible versions), or on tables of other access methods than heap
 * (their rows with a NULL value are not returned).
 *
 * Serializable transactions: the table is predicate-locked as a sequential scan locks it, and every tuple
 * the tail looks at is checked for a conflict out (a concurrent transaction's row the snapshot does not
 * see), as a sequential scan checks it.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "utils/snapmgr.h"

#include "scan.h"

/*
 * Can no row of the index's table have a NULL indexed value: a key column declared NOT NULL, or a partial
 * index whose predicate implies that the key IS NOT NULL?
 */
static bool
sv_nulls_impossible(Relation heap, IndexInfo *ii)
{
	AttrNumber	attno = ii->ii_IndexAttrNumbers[0];
	Expr	   *key;
	NullTest   *nt;

	if (attno != 0)
	{
#if PG_VERSION_NUM >= 180000
		/* a NOT NULL constraint may be NOT VALID from PostgreSQL 18: only a valid one says no row is NULL */
		if (TupleDescCompactAttr(RelationGetDescr(heap), attno - 1)->attnullability == ATTNULLABLE_VALID)
			return true;
#else
		if (TupleDescAttr(RelationGetDescr(heap), attno - 1)->attnotnull)
			return true;
#endif
		key = (Expr *) makeVar(1, attno, TupleDescAttr(RelationGetDescr(heap), attno - 1)->atttypid,
							   TupleDescAttr(RelationGetDescr(heap), attno - 1)->atttypmod,
							   TupleDescAttr(RelationGetDescr(heap), attno - 1)->attcollation, 0);
	}
	else
		key = (Expr *) linitial(ii->ii_Expressions);
	if (ii->ii_Predicate == NIL)
		return false;
	nt = makeNode(NullTest);
	nt->arg = key;
	nt->nulltesttype = IS_NOT_NULL;
	nt->argisrow = false;
	nt->location = -1;
	return predicate_implied_by(list_make1(nt), ii->ii_Predicate, false);
}

/* Prepare the tail: the table's size now, a bulk-read ring, the partial index's predicate. */
static void
sv_nulls_begin(IndexScanDesc scan)
{
	SvScanOpaque *so = (SvScanOpaque *) scan->opaque;
	MemoryContext old;

	sv_begin_fetch(scan);
	old = MemoryContextSwitchTo(so->parent);
	if (!so->tail_prepared)
	{
		/* once a scan: a rescan keeps it */
		so->tail_impossible = sv_nulls_impossible(scan->heapRelation, so->index_info);
		if (so->index_info->ii_Predicate != NIL)
			so->tail_predicate = ExecPrepareQual(so->index_info->ii_Predicate, so->estate);
		so->tail_prepared = true;
	}
	if (so->tail_strategy == NULL)
		so->tail_strategy = GetAccessStrategy(BAS_BULKREAD);
	MemoryContextSwitchTo(old);
	so->tail_started = true;
	if (so->tail_impossible)
		return;
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
#if PG_VERSION_NUM < 170000
	TestForOldSnapshot(scan->xs_snapshot, heap, page);
#endif
	maxoff = PageIsNew(page) ? InvalidOffsetNumber : PageGetMaxOffsetNumber(page);
	if (maxoff != InvalidOffsetNumber)
		heap_get_root_tuples(page, roots);
	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
	{
		ItemId		lp = PageGetItemId(page, off);
		HeapTupleData tup;
		bool		valid;

		if (!ItemIdIsNormal(lp))
			continue;
		tup.t_data = (HeapTupleHeader) PageGetItem(page, lp);
		tup.t_len = ItemIdGetLength(lp);
		tup.t_tableOid = RelationGetRelid(heap);
		ItemPointerSet(&tup.t_self, blk, off);
		valid = HeapTupleSatisfiesVisibility(&tup, scan->xs_snapshot, buf);
		HeapCheckForSerializableConflictOut(valid, heap, &tup, buf, scan->xs_snapshot);
		if (!valid)
			continue;
		if (roots[off - 1] == InvalidOffsetNumber)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg_internal("failed to find parent tuple for heap-only tuple at (%u,%u) in table \"%s\"",
									 blk, off, RelationGetRelationName(heap))));
		visible[nvisible++] = off;
	}
	LockBuffer(buf, BUFFER_LOCK_UNLOCK);
	so->scanned += nvisible;

	/* the pin keeps the visible tuples in place (pruning needs a cleanup lock) while their values are computed */
	so->tail_n = so->tail_pos = 0;
	for (int i = 0; i < nvisible; i++)
	{
		ItemId		lp = PageGetItemId(page, visible[i]);
		HeapTuple	tup = &so->tail_tuple;	/* the slot points at it: it must outlive the loop */

		CHECK_FOR_INTERRUPTS();
		tup->t_data = (HeapTupleHeader) PageGetItem(page, lp);
		tup->t_len = ItemIdGetLength(lp);
		tup->t_tableOid = RelationGetRelid(heap);
		ItemPointerSet(&tup->t_self, blk, visible[i]);
		ExecStoreBufferHeapTuple(tup, so->slot, buf);
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
		if (scan->heapRelation == NULL || scan->heapRelation->rd_tableam != GetHeapamTableAmRoutine() ||
			!IsMVCCSnapshot(scan->xs_snapshot))
			return false;
		sv_nulls_begin(scan);
	}
	if (so->tail_impossible)
		return false;
	while (so->tail_pos >= so->tail_n)
	{
		if (so->tail_blk >= so->tail_nblocks)
			return false;
		if (so->scanned >= sv_max_scan_tuples)
		{
			sv_notice_max_scan(scan);
			so->tail_blk = so->tail_nblocks;
			return false;
		}
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
