/*
 * index_inspect.c: SQL functions that show what a shrinkvec index holds.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/varbit.h"

#include "index.h"
#include "shrinkvec.h"

PG_FUNCTION_INFO_V1(shrinkvec_index_info);
PG_FUNCTION_INFO_V1(shrinkvec_index_entries);

/* Open a shrinkvec index for reading after checking that the caller may read its table. */
static Relation
sv_open_index(Oid indexoid)
{
	Oid			heapoid = IndexGetRelation(indexoid, true);
	Relation	index;
	AclResult	acl;

	if (!OidIsValid(heapoid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation with OID %u is not an index", indexoid)));
	acl = pg_class_aclcheck(heapoid, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, get_rel_name(heapoid));
	index = index_open(indexoid, AccessShareLock);
	if (index->rd_indam == NULL || index->rd_indam->amgettuple != sv_amgettuple)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("index \"%s\" is not a shrinkvec index", RelationGetRelationName(index))));
	return index;
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

/* One row describing the index: distance, type, code size, layout, entries and size. */
Datum
shrinkvec_index_info(PG_FUNCTION_ARGS)
{
	Relation	index = sv_open_index(PG_GETARG_OID(0));
	SvIndexCache *cache = sv_index_cache(index);
	const SvMetaData *meta = &cache->meta;
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	int64		entries = 0;
	int64		data_pages = 0;
	TupleDesc	tupdesc;
	Datum		values[12];
	bool		nulls[12] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	for (BlockNumber blk = 0; blk < nblocks; blk++)
	{
		Buffer		buf = ReadBuffer(index, blk);
		Page		page;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (!PageIsNew(page) && SvPageGetOpaque(page)->flags == SV_PAGE_DATA)
		{
			entries += SvPageGetOpaque(page)->count;
			data_pages++;
		}
		UnlockReleaseBuffer(buf);
	}

	values[0] = CStringGetTextDatum(sv_kind_name(meta->kind));
	values[1] = CStringGetTextDatum(sv_elem_name(meta->elemtype));
	values[2] = Int32GetDatum(meta->dims);
	values[3] = Int32GetDatum(meta->code_bits);
	values[4] = Int32GetDatum(meta->code_bytes + (int) sizeof(ItemPointerData) +
							  (meta->has_factors ? 2 * (int) sizeof(float) : 0));
	values[5] = Int32GetDatum(meta->lists);
	values[6] = Int32GetDatum(meta->capacity);
	values[7] = Int64GetDatum(entries);
	values[8] = Int64GetDatum(data_pages);
	values[9] = Int64GetDatum((int64) nblocks);
	values[10] = Int64GetDatum((int64) nblocks * BLCKSZ);
	values[11] = Int64GetDatum(meta->build_rows);
	index_close(index, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* Every entry of the index: its heap TID, list and code, list by list along the chains. */
Datum
shrinkvec_index_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	index;
	SvIndexCache *cache;
	const SvMetaData *meta;
	uint8	   *codebuf;

	InitMaterializedSRF(fcinfo, 0);
	index = sv_open_index(PG_GETARG_OID(0));
	cache = sv_index_cache(index);
	meta = &cache->meta;
	codebuf = palloc(meta->code_bytes);
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
				Datum		values[3];
				bool		nulls[3] = {0};
				VarBit	   *code = sv_new_varbit(meta->code_bits);
				ItemPointer tid = palloc(sizeof(ItemPointerData));

				*tid = sv_page_tids(page, meta)[i];
				sv_page_get_code(page, meta, i, codebuf);
				memcpy(VARBITS(code), codebuf, VARBITBYTES(code));
				values[0] = PointerGetDatum(tid);
				values[1] = Int32GetDatum(list);
				values[2] = VarBitPGetDatum(code);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
			blk = SvPageGetOpaque(page)->next;
			UnlockReleaseBuffer(buf);
		}
	}
	index_close(index, AccessShareLock);
	return (Datum) 0;
}
