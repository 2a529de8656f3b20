/*
 * inspect.c: SQL functions that show what a shrinkvec index holds, and check it against its table.
 *
 * Security: each function needs SELECT on the table and refuses when row-level security applies to the
 * caller (an index has an entry for every row, hidden or not).  Only the check runs user code (index
 * expressions and predicate), and it runs them as the table's owner, as amcheck does.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varbit.h"
#include "executor/tuptable.h"
#include "storage/bufmgr.h"

#include "svindex.h"
#include "shrinkvec.h"

PG_FUNCTION_INFO_V1(shrinkvec_index_info);
PG_FUNCTION_INFO_V1(shrinkvec_index_entries);
PG_FUNCTION_INFO_V1(shrinkvec_index_check);
PG_FUNCTION_INFO_V1(shrinkvec_index_centroids);

/* The table of an index, for the SQL function fname; errors for a relation that is not an index, or a partitioned one. */
Oid
sv_index_table(Oid indexoid, const char *fname)
{
	Oid			heapoid = IndexGetRelation(indexoid, true);

	if (!OidIsValid(heapoid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation with OID %u is not an index", indexoid)));
	if (get_rel_relkind(indexoid) == RELKIND_PARTITIONED_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot work on partitioned index \"%s\"", fname, get_rel_name(indexoid)),
				 errdetail("A partitioned index has no entries of its own."),
				 errhint("Call %s on the index of each partition (pg_partition_tree lists them).", fname)));
	return heapoid;
}

/*
 * Open a shrinkvec index and its table for reading, after checking that the caller may read every row
 * of the table: SELECT on it, and no row-level security that applies to the caller (the entries would
 * show rows a policy hides).
 */
static Relation
sv_open_index(Oid indexoid, const char *fname, Relation *heap_out)
{
	Oid			heapoid = sv_index_table(indexoid, fname);
	Relation	heap;
	Relation	index;
	AclResult	acl;

	acl = pg_class_aclcheck(heapoid, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, get_rel_name(heapoid));
	if (check_enable_rls(heapoid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s cannot read index \"%s\": row-level security applies to table \"%s\" for role \"%s\"",
						fname, get_rel_name(indexoid), get_rel_name(heapoid), GetUserNameFromId(GetUserId(), false)),
				 errdetail("The index holds an entry for every row, including rows the table's policies hide."),
				 errhint("Run it as the table's owner or as a role with BYPASSRLS.")));
	heap = table_open(heapoid, AccessShareLock);
	index = index_open(indexoid, AccessShareLock);
	if (index->rd_indam == NULL || index->rd_indam->amgettuple != sv_amgettuple)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("index \"%s\" is not a shrinkvec index", RelationGetRelationName(index))));
	*heap_out = heap;
	return index;
}

/* Close what sv_open_index opened. */
static void
sv_close_index(Relation index, Relation heap)
{
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
}

/*
 * Called for every entry of an index: its list, heap TID and code (code_bytes bytes), and its refine
 * entry (page and slot; page NULL without refine codes, or when the slot does not hold the entry's TID).
 */
typedef void (*SvEntryCallback) (int list, ItemPointer tid, const uint8 *code, Page rpage, int rslot, void *arg);

/* Call cb for every entry of the index, list by list along the chains. */
static void
sv_foreach_entry(Relation index, const SvMetaData *meta, SvEntryCallback cb, void *arg)
{
	uint8	   *code = palloc(meta->code_bytes);

	for (int list = 0; list < meta->lists; list++)
	{
		BlockNumber blk = sv_read_list(index, meta, list).first;

		while (blk != InvalidBlockNumber)
		{
			Buffer		buf = ReadBuffer(index, blk);
			Page		page;
			int			n;

			CHECK_FOR_INTERRUPTS();
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			n = SvPageGetOpaque(page)->count;
			for (int i = 0; i < n; i++)
			{
				ItemPointer tid = &sv_page_tids(page, meta)[i];
				Buffer		rbuf = InvalidBuffer;
				Page		rpage = NULL;
				int			rslot = 0;

				sv_page_get_code(page, meta, i, code);	/* codes are stored in blocks: gather one */
				if (meta->refine_bits > 0 &&
					sv_page_refine_blocks(page)[i / meta->refine_capacity] != InvalidBlockNumber)
				{
					rbuf = ReadBuffer(index, sv_page_refine_blocks(page)[i / meta->refine_capacity]);
					LockBuffer(rbuf, BUFFER_LOCK_SHARE);
					rpage = BufferGetPage(rbuf);
					rslot = i % meta->refine_capacity;
					if (SvPageGetOpaque(rpage)->flags != SV_PAGE_REFINE ||
						!ItemPointerEquals(&sv_refine_tids(rpage, meta)[rslot], tid))
						rpage = NULL;
				}
				cb(list, tid, code, rpage, rslot, arg);
				if (BufferIsValid(rbuf))
					UnlockReleaseBuffer(rbuf);
			}
			blk = SvPageGetOpaque(page)->next;
			UnlockReleaseBuffer(buf);
		}
	}
	pfree(code);
}

/* Name of a distance kind. */
static const char *
sv_kind_name(int kind)
{
	switch (kind)
	{
		case SV_KIND_HAMMING:
			return "hamming";
		case SV_KIND_L2:
			return "l2";
		case SV_KIND_IP:
			return "inner_product";
		case SV_KIND_COSINE:
			return "cosine";
	}
	return "unknown";
}

/* Name of an element type. */
static const char *
sv_elem_name(int elemtype)
{
	switch (elemtype)
	{
		case SV_ELEM_BIT:
			return "bit";
		case SV_ELEM_VECTOR:
			return "vector";
		case SV_ELEM_HALFVEC:
			return "halfvec";
	}
	return "unknown";
}

/* One row describing the index: distance, type, code size, layout, entries and size, growth. */
Datum
shrinkvec_index_info(PG_FUNCTION_ARGS)
{
	Relation	heap;
	Relation	index = sv_open_index(PG_GETARG_OID(0), "shrinkvec_index_info", &heap);
	SvMetaData	meta = sv_index_cache(index)->meta;
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	int64		entries = 0;
	int64		data_pages = 0;
	int64		retired_pages = 0;
	int64		free_pages = 0;
	int64		largest = 0;
	int64		due = -1;
	TupleDesc	tupdesc;
	Datum		values[29];
	bool		nulls[29] = {0};
	SvScanSettings settings = sv_scan_settings(index, &meta);
	int64	   *per_list = palloc0(sizeof(int64) * meta.lists);	/* entries of each list, from its pages */
	int64		refine_pages = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	for (BlockNumber blk = 0; blk < nblocks; blk++)
	{
		Buffer		buf = ReadBuffer(index, blk);
		Page		page;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (PageIsNew(page))
			;
		else if (SvPageGetOpaque(page)->flags == SV_PAGE_FREE)
			free_pages++;
		else if (sv_page_stale(page, &meta))
			retired_pages++;
		else if (SvPageGetOpaque(page)->flags == SV_PAGE_DATA)
		{
			uint32		list = SvPageGetOpaque(page)->list;

			entries += SvPageGetOpaque(page)->count;
			data_pages++;
			if (list < (uint32) meta.lists)
				per_list[list] += SvPageGetOpaque(page)->count;
		}
		else if (SvPageGetOpaque(page)->flags == SV_PAGE_REFINE)
			refine_pages++;
		UnlockReleaseBuffer(buf);
	}
	for (int list = 0; list < meta.lists; list++)
		largest = Max(largest, per_list[list]);
	pfree(per_list);
	due = sv_repartition_at(index, &meta);

	values[0] = CStringGetTextDatum(sv_kind_name(meta.kind));
	values[1] = CStringGetTextDatum(sv_elem_name(meta.elemtype));
	values[2] = Int32GetDatum(meta.dims);
	values[3] = Int32GetDatum(meta.code_bits);
	values[4] = Int32GetDatum(meta.code_bytes + (int) sizeof(ItemPointerData) +
							  (meta.has_factors ? 2 * (int) sizeof(float) : 0));
	values[5] = Int32GetDatum(meta.lists);
	values[6] = Int32GetDatum(meta.capacity);
	values[7] = Int64GetDatum(entries);
	values[8] = Int64GetDatum(data_pages);
	values[9] = Int64GetDatum((int64) nblocks);
	values[10] = Int64GetDatum((int64) nblocks * BLCKSZ);
	values[11] = Int64GetDatum(meta.build_rows);
	values[12] = Int32GetDatum(meta.refine_bits);
	values[13] = Int64GetDatum(refine_pages);
	values[14] = Int32GetDatum(meta.rotation_rounds);
	values[15] = Int64GetDatum((int64) meta.rotation_seed);
	values[16] = Float4GetDatum(meta.calib_target);
	values[17] = Int32GetDatum(meta.calib_probes);
	values[18] = Int32GetDatum(meta.calib_shortlist);
	values[19] = Float4GetDatum(meta.calib_recall);
	nulls[17] = nulls[18] = nulls[19] = meta.calib_probes == 0;
	values[20] = Int64GetDatum(largest);
	values[21] = Int32GetDatum((int32) meta.generation);
	values[22] = TimestampTzGetDatum((TimestampTz) meta.last_repartition);
	nulls[22] = meta.last_repartition == 0;
	values[23] = Int64GetDatum(due);
	nulls[23] = due < 0;
	values[24] = Int64GetDatum(retired_pages);
	values[25] = Int64GetDatum(free_pages);
	values[26] = Int32GetDatum(settings.probes);
	values[27] = Int32GetDatum(settings.shortlist);
	values[28] = Int32GetDatum(settings.rerank);
	sv_close_index(index, heap);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* State of shrinkvec_index_entries: where the rows go. */
typedef struct SvEntriesState
{
	ReturnSetInfo *rsinfo;
	const SvMetaData *meta;
} SvEntriesState;

/* Append one entry as a row (tid, list, code). */
static void
sv_entries_row(int list, ItemPointer tid, const uint8 *code, Page rpage, int rslot, void *arg)
{
	SvEntriesState *st = (SvEntriesState *) arg;
	Datum		values[8];
	bool		nulls[8] = {0};
	VarBit	   *bits = sv_new_varbit(st->meta->code_bits);
	ItemPointer t = palloc(sizeof(ItemPointerData));

	*t = *tid;
	memcpy(VARBITS(bits), code, VARBITBYTES(bits));
	values[0] = PointerGetDatum(t);
	values[1] = Int32GetDatum(list);
	values[2] = VarBitPGetDatum(bits);
	if (rpage != NULL)
	{
		const SvMetaData *meta = st->meta;
		int			nbytes = (meta->code_bits * meta->refine_bits + 7) / 8;
		bytea	   *r = palloc(VARHDRSZ + nbytes);

		SET_VARSIZE(r, VARHDRSZ + nbytes);
		memcpy(VARDATA(r), sv_refine_codes(rpage, meta) + (Size) rslot * meta->refine_bytes, nbytes);
		values[3] = PointerGetDatum(r);
		values[4] = Float4GetDatum(sv_refine_lo(rpage, meta)[rslot]);
		values[5] = Float4GetDatum(sv_refine_step(rpage, meta)[rslot]);
		values[6] = Float4GetDatum(sv_refine_norm2(rpage, meta)[rslot]);
		values[7] = Float4GetDatum(sv_refine_err2(rpage, meta)[rslot]);
	}
	else
		nulls[3] = nulls[4] = nulls[5] = nulls[6] = nulls[7] = true;
	tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc, values, nulls);
	pfree(t);
	pfree(bits);
}

/* Every entry of the index: its heap TID, list and code, list by list along the chains. */
Datum
shrinkvec_index_entries(PG_FUNCTION_ARGS)
{
	SvEntriesState st;
	Relation	heap;
	Relation	index;

	InitMaterializedSRF(fcinfo, 0);
	index = sv_open_index(PG_GETARG_OID(0), "shrinkvec_index_entries", &heap);
	st.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	st.meta = &sv_index_cache(index)->meta;
	sv_foreach_entry(index, st.meta, sv_entries_row, &st);
	sv_close_index(index, heap);
	return (Datum) 0;
}

/* One index entry as the check sees it: heap TID, where its code is, and how often the TID occurs. */
typedef struct SvCheckEntry
{
	ItemPointerData tid;
	uint32		code_at;		/* index of its code in SvCheckState.codes (bit opclasses) */
	uint32		count;			/* entries with this TID (set on the first of a run) */
	bool		seen;			/* a visible row points here */
} SvCheckEntry;

/* State of shrinkvec_index_check. */
typedef struct SvCheckState
{
	const SvMetaData *meta;
	SvCheckEntry *entries;
	int64		nentries;
	int64		maxentries;
	uint8	   *codes;			/* bit opclasses: every entry's code, code_bytes each */
	uint8	   *rowcode;		/* scratch: the code of the current row */
	int64		live_rows;
	int64		missing;
	int64		wrong_codes;
} SvCheckState;

/* Remember one index entry. */
static void
sv_check_collect(int list, ItemPointer tid, const uint8 *code, Page rpage, int rslot, void *arg)
{
	SvCheckState *st = (SvCheckState *) arg;
	bool		keep_codes = st->meta->elemtype == SV_ELEM_BIT;

	if (st->nentries == st->maxentries)
	{
		st->maxentries *= 2;
		if ((Size) st->maxentries * sizeof(SvCheckEntry) > MaxAllocHugeSize)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("index has too many entries to check: more than %lld", (long long) st->nentries)));
		st->entries = repalloc_huge(st->entries, (Size) st->maxentries * sizeof(SvCheckEntry));
		if (keep_codes)
			st->codes = repalloc_huge(st->codes, (Size) st->maxentries * st->meta->code_bytes);
	}
	st->entries[st->nentries].tid = *tid;
	st->entries[st->nentries].code_at = (uint32) st->nentries;
	st->entries[st->nentries].count = 1;
	st->entries[st->nentries].seen = false;
	if (keep_codes)
		memcpy(st->codes + (Size) st->nentries * st->meta->code_bytes, code, st->meta->code_bytes);
	st->nentries++;
}

/* qsort order of check entries: by heap TID. */
static int
sv_check_entry_cmp(const void *a, const void *b)
{
	return ItemPointerCompare((ItemPointer) &((const SvCheckEntry *) a)->tid,
							  (ItemPointer) &((const SvCheckEntry *) b)->tid);
}

/* The first entry with this TID in the sorted entries, or NULL. */
static SvCheckEntry *
sv_check_find(SvCheckState *st, ItemPointer tid)
{
	int64		lo = 0,
				hi = st->nentries;

	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (ItemPointerCompare(&st->entries[mid].tid, tid) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < st->nentries && ItemPointerEquals(&st->entries[lo].tid, tid))
		return &st->entries[lo];
	return NULL;
}

/* One visible heap row (its HOT chain's root TID and its index value): is it indexed, with the right code? */
static void
sv_check_row(Relation index, ItemPointer tid, Datum *values, bool *isnull, bool alive, void *arg)
{
	SvCheckState *st = (SvCheckState *) arg;
	SvCheckEntry *e;

	if (isnull[0])
		return;
	st->live_rows++;
	e = sv_check_find(st, tid);
	if (e == NULL)
	{
		st->missing++;
		return;
	}
	e->seen = true;
	if (st->meta->elemtype == SV_ELEM_BIT)
	{
		sv_encode_bits(st->meta, values[0], st->rowcode);
		for (uint32 i = 0; i < e->count; i++)
			if (memcmp(st->codes + (Size) e[i].code_at * st->meta->code_bytes, st->rowcode,
					   st->meta->code_bytes) != 0)
				st->wrong_codes++;
	}
}

/*
 * Is an entry that no visible row claimed dangling (a sign of corruption)?  Yes when no tuple is behind
 * its TID (a block or line pointer that does not exist, or an unused line pointer of a heap table), or
 * when the version at that very TID is visible yet no visible row reached it (it is not a HOT chain's
 * root, or the row's value is NULL or outside the index predicate).  An entry of a dead, aborted or
 * in-progress tuple is not: VACUUM removes those (an aborted INSERT leaves one until it runs).
 */
static bool
sv_check_dangling(Relation heap, ItemPointer tid, Snapshot snapshot, TupleTableSlot *slot, BlockNumber nblocks)
{
	BlockNumber blk = ItemPointerGetBlockNumber(tid);
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	bool		visible;

	if (blk >= nblocks || off < FirstOffsetNumber)
		return true;
	if (heap->rd_rel->relam == HEAP_TABLE_AM_OID)
	{
		Buffer		buf = ReadBuffer(heap, blk);
		Page		page;
		bool		exists;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		exists = !PageIsNew(page) && off <= PageGetMaxOffsetNumber(page) &&
			ItemIdIsUsed(PageGetItemId(page, off));
		UnlockReleaseBuffer(buf);
		if (!exists)
			return true;
	}
	visible = table_tuple_fetch_row_version(heap, tid, snapshot, slot);
	ExecClearTuple(slot);
	return visible;
}

/*
 * Check an index against its table: every row visible to the transaction's snapshot that the index
 * covers (predicate true, value not NULL) has exactly one entry, at its HOT chain's root TID; no
 * entry points elsewhere; bit codes equal the column.  The index expressions and predicate are user
 * code: they run as the table's owner under SECURITY_RESTRICTED_OPERATION with search_path set to
 * pg_catalog, pg_temp, as amcheck does, never as the caller.
 */
Datum
shrinkvec_index_check(PG_FUNCTION_ARGS)
{
	SvCheckState st = {0};
	Relation	heap;
	Relation	index = sv_open_index(PG_GETARG_OID(0), "shrinkvec_index_check", &heap);
	IndexInfo  *indexInfo;
	Snapshot	snapshot;
	TableScanDesc scan;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	int64		duplicated = 0,
				dangling = 0;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {0};
	bool		is_bit;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	st.meta = &sv_index_cache(index)->meta;
	is_bit = st.meta->elemtype == SV_ELEM_BIT;
	st.maxentries = 1024;
	st.entries = palloc_extended(st.maxentries * sizeof(SvCheckEntry), MCXT_ALLOC_HUGE);
	if (is_bit)
		st.codes = palloc_extended((Size) st.maxentries * st.meta->code_bytes, MCXT_ALLOC_HUGE);
	st.rowcode = palloc(st.meta->code_bytes);
	/* the snapshot first (as amcheck): a row it sees was inserted, with its entry, before the entries are read */
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	sv_foreach_entry(index, st.meta, sv_check_collect, &st);
	if (st.nentries > 1)
		qsort(st.entries, st.nentries, sizeof(SvCheckEntry), sv_check_entry_cmp);
	for (int64 i = 0; i < st.nentries;)
	{
		int64		j = i + 1;

		while (j < st.nentries && ItemPointerEquals(&st.entries[j].tid, &st.entries[i].tid))
			j++;
		st.entries[i].count = (uint32) (j - i);
		duplicated += j - i - 1;
		i = j;
	}

	/* the heap, as the table's owner (amcheck's verify_heapam and bt_index_check do the same) */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(heap->rd_rel->relowner, save_sec_context | SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	scan = table_beginscan_strat(heap, snapshot, 0, NULL, true, true);
	indexInfo = BuildIndexInfo(index);
	indexInfo->ii_Concurrent = true;	/* an MVCC snapshot: rows this transaction can see */
	table_index_build_scan(heap, index, indexInfo, true, false, sv_check_row, &st, scan);
	{
		TupleTableSlot *slot = table_slot_create(heap, NULL);
		BlockNumber nblocks = RelationGetNumberOfBlocks(heap);

		for (int64 i = 0; i < st.nentries; i += st.entries[i].count)
			if (!st.entries[i].seen && sv_check_dangling(heap, &st.entries[i].tid, snapshot, slot, nblocks))
				dangling++;
		ExecDropSingleTupleTableSlot(slot);
	}
	UnregisterSnapshot(snapshot);
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	sv_close_index(index, heap);

	values[0] = Int64GetDatum(st.live_rows);
	values[1] = Int64GetDatum(st.nentries);
	values[2] = Int64GetDatum(st.missing);
	values[3] = Int64GetDatum(duplicated);
	values[4] = Int64GetDatum(dangling);
	values[5] = Int64GetDatum(st.wrong_codes);
	nulls[5] = !is_bit;
	values[6] = BoolGetDatum(st.missing == 0 && duplicated == 0 && dangling == 0 && st.wrong_codes == 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* Every list's centroid as real[] (vector opclasses), list by list. */
Datum
shrinkvec_index_centroids(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	Relation	heap;
	Relation	index;
	const SvIndexCache *cache;
	const SvMetaData *meta;
	bool		rotated = PG_NARGS() > 1 ? PG_GETARG_BOOL(1) : false;	/* 0.3.0's SQL has one argument */

	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	index = sv_open_index(PG_GETARG_OID(0), "shrinkvec_index_centroids", &heap);
	cache = sv_index_cache(index);
	meta = &cache->meta;
	if (meta->elemtype == SV_ELEM_BIT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("shrinkvec_index_centroids shows the centroids of vector and halfvec indexes, \"%s\" indexes bit",
						RelationGetRelationName(index))));
	for (int list = 0; list < meta->lists; list++)
	{
		float	   *c = palloc(sizeof(float) * meta->code_bits);
		Datum	   *elems = palloc(sizeof(Datum) * meta->code_bits);
		Datum		values[2];
		bool		nulls[2] = {0};

		memcpy(c, (const float *) cache->centroids + (Size) list * meta->code_bits, sizeof(float) * meta->code_bits);
		if (!rotated)
			sv_unrotate_coded(cache, c);
		for (int d = 0; d < meta->code_bits; d++)
			elems[d] = Float4GetDatum(c[d]);
		values[0] = Int32GetDatum(list);
		values[1] = PointerGetDatum(construct_array(elems, meta->code_bits, FLOAT4OID, sizeof(float4), true,
													TYPALIGN_INT));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		pfree(elems);
		pfree(c);
	}
	sv_close_index(index, heap);
	return (Datum) 0;
}
