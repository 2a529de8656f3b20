/*
 * cache.c: the meta data, centroids and coarse level of a shrinkvec index, read once per relcache entry
 * and kept in rd_amcache; the directory entry of a list; the opclass's kind and element type.
 */
#include "postgres.h"

#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/builtins.h"

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

/* The index's meta page and centroids, read once and cached in rd_amcache. */
SvIndexCache *
sv_index_cache(Relation index)
{
	SvIndexCache *cache;
	Buffer		buf;
	MemoryContext old;

	if (index->rd_amcache != NULL)
		return (SvIndexCache *) index->rd_amcache;

	old = MemoryContextSwitchTo(index->rd_indexcxt);
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
	if (cache->meta.version != SV_INDEX_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" has shrinkvec index format version %u, this shrinkvec reads version %d",
						RelationGetRelationName(index), cache->meta.version, SV_INDEX_VERSION),
				 errdetail("Version 3 rotates the coded dims of vector indexes before coding them."),
				 errhint("REINDEX INDEX %s to rebuild it in the current format.",
						 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(index)),
													RelationGetRelationName(index)))));

	if (cache->meta.centroid_bytes > 0)
	{
		Size		total = (Size) cache->meta.lists * cache->meta.centroid_bytes;

		cache->centroids = MemoryContextAllocHuge(index->rd_indexcxt, total);
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
		char	   *stream = MemoryContextAllocHuge(index->rd_indexcxt, sv_coarse_bytes(&cache->meta));

		sv_read_stream(index, cache->meta.coarse_start, stream, sv_coarse_bytes(&cache->meta));
		sv_coarse_attach(cache, stream, index->rd_indexcxt);
	}
	MemoryContextSwitchTo(old);
	index->rd_amcache = cache;
	return cache;
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
	SvIndexCache *cache = (SvIndexCache *) index->rd_amcache;
	int			slot = (int) (blk & (SV_RECENT_SLOTS - 1));
	Buffer		buf;

	if (cache == NULL || RelationUsesLocalBuffers(index))
		return ReadBuffer(index, blk);
	if (cache->recent_blk[slot] == blk && BufferIsValid(cache->recent_buf[slot]) &&
#if PG_VERSION_NUM >= 160000
		ReadRecentBuffer(index->rd_locator, MAIN_FORKNUM, blk, cache->recent_buf[slot])
#else
		ReadRecentBuffer(index->rd_node, MAIN_FORKNUM, blk, cache->recent_buf[slot])
#endif
		)
	{
		/* ReadRecentBuffer does not count the access in the statistics views: as ReadBuffer would */
		pgstat_count_buffer_read(index);
		pgstat_count_buffer_hit(index);
		return cache->recent_buf[slot];
	}
	buf = ReadBuffer(index, blk);
	cache->recent_blk[slot] = blk;
	cache->recent_buf[slot] = buf;
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
