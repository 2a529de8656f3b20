/*
 * cache.c: the meta data, centroids and coarse level of a shrinkvec index, read once per relcache entry
 * and kept in a backend-local table of caches; the directory entry of a list; the opclass's kind and
 * element type.
 */
#include "postgres.h"

#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "access/xact.h"

#include "svindex.h"
#include "kernels/kernels.h"

/* Copy n bytes from a stream of pages starting at block start into dst. */
void
sv_read_stream(Relation index, BlockNumber start, char *dst, Size n)
{
	BlockNumber blk = start;

	while (n > 0)
	{
		Buffer		buf = ReadBuffer(index, blk);
		Size		chunk = Min(n, SV_PAGE_CONTENT_SIZE);

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		memcpy(dst, PageGetContents(BufferGetPage(buf)), chunk);
		UnlockReleaseBuffer(buf);
		dst += chunk;
		n -= chunk;
		blk++;
	}
}

/*
 * The caches of this backend, one per index: a hash table by index OID in TopMemoryContext.  Each holds
 * one generation of one index in a memory context of its own.  A new relfilenode (REINDEX, TRUNCATE) or a
 * newer generation on the meta page retires the cache: it leaves the table at once, and its context is
 * deleted at the end of the transaction, when no scan can still be reading its arrays (a scan copies the
 * SvIndexCache struct at rescan).  A relcache invalidation (VACUUM's statistics, ANALYZE) only marks the
 * cache for that check, so a long transaction does not pile up copies.  0.4.0 kept the cache in
 * rd_amcache, whose arrays leaked into rd_indexcxt at every invalidation.  The cache of a dropped index
 * stays until the backend ends.
 */
typedef struct SvCacheEntry
{
	Oid			indexoid;		/* hash key */
	Oid			relfile;		/* the index's relfilenode number the cache was read from */
	bool		stale;			/* a relcache invalidation came: check the relfilenode and generation */
	MemoryContext cxt;			/* holds cache and its arrays */
	SvIndexCache *cache;
	SvRecentHints *hints;		/* sv_read_recent's hints (in cxt) */
} SvCacheEntry;

static HTAB *sv_caches = NULL;
static List *sv_retired_caches = NIL;	/* contexts to delete at the end of the transaction */
static SvCacheEntry *sv_last_entry = NULL;	/* the entry found last (sv_read_recent runs per page) */

/* This backend's cache entry of an index, or NULL. */
static SvCacheEntry *
sv_find_cache(Oid oid)
{
	if (sv_last_entry != NULL && sv_last_entry->indexoid == oid)
		return sv_last_entry;
	if (sv_caches == NULL)
		return NULL;
	sv_last_entry = hash_search(sv_caches, &oid, HASH_FIND, NULL);
	return sv_last_entry;
}

/* Take an index's cache out of the table; its context goes at the end of the transaction. */
static void
sv_retire_cache(SvCacheEntry *entry)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	sv_retired_caches = lappend(sv_retired_caches, entry->cxt);
	MemoryContextSwitchTo(old);
	sv_last_entry = NULL;
	hash_search(sv_caches, &entry->indexoid, HASH_REMOVE, NULL);
}

/* Relcache invalidation callback: mark the cache of relid (every cache for InvalidOid) for a check. */
static void
sv_cache_invalidate(Datum arg, Oid relid)
{
	if (sv_caches == NULL)
		return;
	if (OidIsValid(relid))
	{
		SvCacheEntry *entry = sv_find_cache(relid);

		if (entry != NULL)
			entry->stale = true;
	}
	else
	{
		HASH_SEQ_STATUS seq;
		SvCacheEntry *entry;

		hash_seq_init(&seq, sv_caches);
		while ((entry = hash_seq_search(&seq)) != NULL)
			entry->stale = true;
	}
}

/* Transaction callback: delete the contexts of the caches retired during the transaction. */
static void
sv_cache_xact_end(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_PARALLEL_ABORT && event != XACT_EVENT_PREPARE)
		return;
	foreach(lc, sv_retired_caches)
		MemoryContextDelete((MemoryContext) lfirst(lc));
	list_free(sv_retired_caches);
	sv_retired_caches = NIL;
}

/* The relfilenode number of an index: new after REINDEX or TRUNCATE. */
static Oid
sv_relfile(Relation index)
{
#if PG_VERSION_NUM >= 160000
	return index->rd_locator.relNumber;
#else
	return index->rd_node.relNode;
#endif
}

/* Register the cache table's callbacks (from _PG_init). */
void
sv_cache_init(void)
{
	CacheRegisterRelcacheCallback(sv_cache_invalidate, (Datum) 0);
	RegisterXactCallback(sv_cache_xact_end, NULL);
}

/* Read the index's meta page and centroids into a new cache in cxt. */
static SvIndexCache *
sv_load_cache(Relation index, MemoryContext cxt)
{
	SvIndexCache *cache;
	Buffer		buf;
	MemoryContext old = MemoryContextSwitchTo(cxt);

	cache = palloc0(sizeof(SvIndexCache));
	buf = ReadBuffer(index, SV_META_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(&cache->meta, SvPageGetMeta(BufferGetPage(buf)), sizeof(SvMetaData));
	UnlockReleaseBuffer(buf);
	if (cache->meta.magic != SV_INDEX_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not a shrinkvec index", RelationGetRelationName(index)),
				 errhint("REINDEX INDEX %s to rebuild it.",
						 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(index)),
													RelationGetRelationName(index)))));
	if (cache->meta.version < SV_INDEX_MIN_VERSION || cache->meta.version > SV_INDEX_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" has shrinkvec index format version %u, this shrinkvec reads versions %d to %d",
						RelationGetRelationName(index), cache->meta.version, SV_INDEX_MIN_VERSION, SV_INDEX_VERSION),
				 errdetail("Version 3 rotates the coded dims of vector indexes before coding them."),
				 errhint("REINDEX INDEX %s to rebuild it in the current format.",
						 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(index)),
													RelationGetRelationName(index)))));

	if (cache->meta.centroid_bytes > 0)
	{
		Size		total = (Size) cache->meta.lists * cache->meta.centroid_bytes;

		cache->centroids = MemoryContextAllocHuge(cxt, total);
		sv_read_stream(index, cache->meta.centroid_start, cache->centroids, total);
		if (cache->meta.elemtype != SV_ELEM_BIT)
		{
			int			dim = cache->meta.code_bits;

			cache->centroid_norm2 = palloc(sizeof(float) * cache->meta.lists);
			for (int i = 0; i < cache->meta.lists; i++)
			{
				const float *c = (const float *) cache->centroids + (Size) i * dim;

				cache->centroid_norm2[i] = sv_kernels.dot(c, c, dim);
			}
		}
	}
	sv_cache_rotation(cache);
	if (cache->meta.coarse_groups > 0)
	{
		char	   *stream = MemoryContextAllocHuge(cxt, sv_coarse_bytes(&cache->meta));

		sv_read_stream(index, cache->meta.coarse_start, stream, sv_coarse_bytes(&cache->meta));
		sv_coarse_attach(cache, stream, cxt);
	}
	MemoryContextSwitchTo(old);
	return cache;
}

/*
 * The index's meta page and centroids: this backend's cache, read again when the meta page shows a newer
 * generation (a re-partition) or the relcache entry was invalidated.  Costs one shared buffer read of the
 * meta page per call.
 */
SvIndexCache *
sv_index_cache(Relation index)
{
	Oid			oid = RelationGetRelid(index);
	SvCacheEntry *entry;
	bool		found;
	Buffer		buf;
	uint32		generation;
	MemoryContext cxt;
	MemoryContext caller;

	if (sv_caches == NULL)
	{
		HASHCTL		ctl = {0};

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(SvCacheEntry);
		ctl.hcxt = TopMemoryContext;
		sv_caches = hash_create("shrinkvec index caches", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = sv_find_cache(oid);
	if (entry != NULL)
	{
		/* the generation on the meta page, through the hints */
		buf = sv_read_recent(index, SV_META_BLKNO);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		generation = SvPageGetMeta(BufferGetPage(buf))->generation;
		UnlockReleaseBuffer(buf);
		if (generation == entry->cache->meta.generation && (!entry->stale || entry->relfile == sv_relfile(index)))
		{
			entry->stale = false;
			return entry->cache;
		}
		sv_retire_cache(entry);	/* a scan may still read that generation: kept to the transaction's end */
	}
	cxt = AllocSetContextCreate(TopMemoryContext, "shrinkvec index cache", ALLOCSET_DEFAULT_SIZES);
	caller = CurrentMemoryContext;
	PG_TRY();
	{
		SvIndexCache *cache = sv_load_cache(index, cxt);

		entry = hash_search(sv_caches, &oid, HASH_ENTER, &found);
		entry->relfile = sv_relfile(index);
		entry->stale = false;
		entry->cxt = cxt;
		entry->cache = cache;
		entry->hints = RelationUsesLocalBuffers(index) ? NULL : MemoryContextAllocZero(cxt, sizeof(SvRecentHints));
		cache->recent = entry->hints;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller);	/* sv_load_cache may have failed inside cxt */
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return entry->cache;
}

/* Read list i's directory entry. */
SvListEntry
sv_read_list(Relation index, const SvMetaData *meta, int list)
{
	return sv_read_list_cached(index, meta, list, false);
}

/* sv_read_list, through sv_read_recent when recent is set (scans). */
SvListEntry
sv_read_list_cached(Relation index, const SvMetaData *meta, int list, bool recent)
{
	int			per_page = SV_PAGE_CONTENT_SIZE / sizeof(SvListEntry);
	BlockNumber blk = meta->directory_start + list / per_page;
	Buffer		buf = recent ? sv_read_recent(index, blk) : ReadBuffer(index, blk);
	SvListEntry entry;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	entry = ((SvListEntry *) PageGetContents(BufferGetPage(buf)))[list % per_page];
	UnlockReleaseBuffer(buf);
	return entry;
}

/*
 * ReadBuffer(index, blk) for scans: the buffer the page was last found in is pinned directly when it still
 * holds the page (ReadRecentBuffer checks the buffer's tag), skipping the lookup in the shared buffer
 * mapping table, a cache miss per page on a large shared_buffers.  The hints live in the relcache
 * entry's cache (this backend only, a fixed table direct-mapped by block number) and are only hints: a
 * stale or missing one costs the normal ReadBuffer.  The cache is looked up here, not passed in: a relcache
 * invalidation absorbed during the scan (a TOAST lock while reading a row) frees and rebuilds it.  Temporary
 * indexes (local buffers) take the normal path.
 */
Buffer
sv_read_recent(Relation index, BlockNumber blk)
{
	SvCacheEntry *entry = sv_find_cache(RelationGetRelid(index));
	SvRecentHints *hints = entry != NULL ? entry->hints : NULL;
	int			slot = (int) (blk & (SV_RECENT_SLOTS - 1));
	Buffer		buf;

	if (hints == NULL || RelationUsesLocalBuffers(index))
		return ReadBuffer(index, blk);
	if (hints->blk[slot] == blk && BufferIsValid(hints->buf[slot]) &&
#if PG_VERSION_NUM >= 160000
		ReadRecentBuffer(index->rd_locator, MAIN_FORKNUM, blk, hints->buf[slot])
#else
		ReadRecentBuffer(index->rd_node, MAIN_FORKNUM, blk, hints->buf[slot])
#endif
		)
	{
		/* ReadRecentBuffer does not count the access in the statistics views: as ReadBuffer would */
		pgstat_count_buffer_read(index);
		pgstat_count_buffer_hit(index);
		return hints->buf[slot];
	}
	buf = ReadBuffer(index, blk);
	hints->blk[slot] = blk;
	hints->buf[slot] = buf;
	return buf;
}

/* The opclass's distance kind, from support function 1. */
int
sv_index_kind(Relation index)
{
	FmgrInfo   *proc = index_getprocinfo(index, 1, SV_KIND_PROC);

	return DatumGetInt32(FunctionCall1(proc, PointerGetDatum(NULL)));
}

/*
 * The indexed element type (bit, vector or halfvec), from support function 2 of the opclass: the
 * opclass says what it indexes, so no type is recognised by its name (a type called vector in another
 * schema is not pgvector's).
 */
int
sv_index_elemtype(Relation index)
{
	const SvTypeInfo *info;

	if (!OidIsValid(index_getprocid(index, 1, SV_TYPE_PROC)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("operator class of index \"%s\" has no support function %d (the indexed type)",
						RelationGetRelationName(index), SV_TYPE_PROC),
				 errhint("Run ALTER EXTENSION shrinkvec UPDATE.")));
	info = (const SvTypeInfo *) DatumGetPointer(FunctionCall1(index_getprocinfo(index, 1, SV_TYPE_PROC),
															   PointerGetDatum(NULL)));
	return info->elemtype;
}

/* Make cache->rotation_masks from cache->meta (in the current memory context; NULL without a rotation). */
void
sv_cache_rotation(SvIndexCache *cache)
{
	const SvMetaData *meta = &cache->meta;

	cache->rotation_masks = NULL;
	if (meta->rotation_rounds <= 0)
		return;
	cache->rotation_masks = palloc(sizeof(uint32) * meta->code_bits *
								   sv_rotation_steps(meta->code_bits, meta->rotation_rounds));
	sv_rotation_masks(meta->code_bits, meta->rotation_seed, meta->rotation_rounds, cache->rotation_masks);
}
