/*
 * page.c: the layout of the shrinkvec index's pages: initialising a page, the arrays of a data page and of
 * a refine page, the capacity of a page, and new pages at the end of the index (or recycled ones).
 */
#include "postgres.h"

#include "storage/indexfsm.h"
#include "storage/lmgr.h"

#include "svindex.h"
#include "kernels/kernels.h"

/* Initialise a page of the given kind with an empty contents area counted as used. */
void
sv_page_init(Page page, uint16 flags, uint32 list)
{
	SvPageOpaque *opaque;

	PageInit(page, BLCKSZ, sizeof(SvPageOpaque));
	opaque = SvPageGetOpaque(page);
	opaque->next = InvalidBlockNumber;
	opaque->list = list;
	opaque->count = 0;
	opaque->flags = flags;
	opaque->page_id = SV_PAGE_ID;
	if (flags == SV_PAGE_DATA)
	{
		BlockNumber *rblocks = sv_page_refine_blocks(page);

		for (int i = 0; i < SV_MAX_REFINE_PAGES; i++)
			rblocks[i] = InvalidBlockNumber;
	}
	/* the contents are arrays, not line pointers: all of it is data to GenericXLog */
	((PageHeader) page)->pd_lower = ((PageHeader) page)->pd_upper;
}

/* The codes array of a data page (blocked by meta->lanes). */
uint8 *
sv_page_codes(Page page, const SvMetaData *meta)
{
	return (uint8 *) page + SV_CODES_OFFSET;
}

/* The alpha array of a data page (vector opclasses). */
float *
sv_page_alpha(Page page, const SvMetaData *meta)
{
	return (float *) (sv_page_codes(page, meta) + (Size) meta->capacity * meta->code_bytes);
}

/* The r2 array of a data page (vector opclasses). */
float *
sv_page_r2(Page page, const SvMetaData *meta)
{
	return sv_page_alpha(page, meta) + meta->capacity;
}

/* The TID array of a data page. */
ItemPointerData *
sv_page_tids(Page page, const SvMetaData *meta)
{
	Size		off = (Size) meta->capacity * meta->code_bytes;

	if (meta->has_factors)
		off += (Size) meta->capacity * 2 * sizeof(float);
	return (ItemPointerData *) (sv_page_codes(page, meta) + off);
}

/* Copy entry i's code out of a data page. */
void
sv_page_get_code(Page page, const SvMetaData *meta, int i, uint8 *code)
{
	sv_fs_get(sv_page_codes(page, meta), meta->lanes, meta->code_bytes, i, code);
}

/* Entries per data page: a multiple of 32 in blocks of 32 when one block fits, else row-major. */
void
sv_page_capacity(int code_bytes, bool has_factors, int *capacity, int *lanes)
{
	Size		room = BLCKSZ - MAXALIGN(sizeof(SvPageOpaque)) - SV_CODES_OFFSET;
	Size		entry = code_bytes + sizeof(ItemPointerData) + (has_factors ? 2 * sizeof(float) : 0);
	int			n = (int) (room / entry);

	if (n >= SV_FS_LANES)
	{
		*capacity = n - n % SV_FS_LANES;
		*lanes = SV_FS_LANES;
	}
	else
	{
		*capacity = n;
		*lanes = 1;
	}
}

/*
 * Set meta's refine layout: bytes a code, entries a refine page and refine pages a data page.  A data
 * page's refine pages must fit in SV_MAX_REFINE_PAGES: when they do not, the data page holds fewer
 * entries (whole blocks of lanes).  Errors when one refine entry does not fit in a page.
 */
void
sv_refine_layout(SvMetaData *meta, int refine_bits)
{
	Size		room = BLCKSZ - MAXALIGN(sizeof(SvPageOpaque)) - SV_CODES_OFFSET;
	Size		entry;

	meta->refine_bits = refine_bits;
	if (refine_bits == 0)
	{
		meta->refine_bytes = meta->refine_capacity = meta->refine_pages = 0;
		return;
	}
	meta->refine_bytes = TYPEALIGN(8, ((Size) meta->code_bits * refine_bits + 7) / 8);
	entry = meta->refine_bytes + 4 * sizeof(float) + sizeof(ItemPointerData);
	if (entry > room)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("refine = %d codes of %d dimensions need %zu bytes an entry, more than a page holds (%zu)",
						refine_bits, meta->code_bits, entry, room),
				 errhint("Use fewer refine bits, or code a prefix with WITH (bits = ...).")));
	meta->refine_capacity = (int) (room / entry);
	if (meta->capacity > meta->refine_capacity * SV_MAX_REFINE_PAGES)
	{
		int			most = meta->refine_capacity * SV_MAX_REFINE_PAGES;

		meta->capacity = meta->lanes > 1 ? most - most % meta->lanes : most;
	}
	meta->refine_pages = (meta->capacity + meta->refine_capacity - 1) / meta->refine_capacity;
}

/* The refine page blocks of a data page: the start of its contents, before the codes. */
BlockNumber *
sv_page_refine_blocks(Page page)
{
	StaticAssertStmt(MAXALIGN(SizeOfPageHeaderData) + SV_MAX_REFINE_PAGES * sizeof(BlockNumber) <= SV_CODES_OFFSET,
					 "refine blocks must fit before the codes");
	return (BlockNumber *) PageGetContents(page);
}

/* The codes array of a refine page (row-major, refine_bytes each). */
uint8 *
sv_refine_codes(Page page, const SvMetaData *meta)
{
	return (uint8 *) page + SV_CODES_OFFSET;
}

/* The lo array of a refine page. */
float *
sv_refine_lo(Page page, const SvMetaData *meta)
{
	return (float *) (sv_refine_codes(page, meta) + (Size) meta->refine_capacity * meta->refine_bytes);
}

/* The step array of a refine page. */
float *
sv_refine_step(Page page, const SvMetaData *meta)
{
	return sv_refine_lo(page, meta) + meta->refine_capacity;
}

/* The norm2 array of a refine page. */
float *
sv_refine_norm2(Page page, const SvMetaData *meta)
{
	return sv_refine_step(page, meta) + meta->refine_capacity;
}

/* The err2 array of a refine page. */
float *
sv_refine_err2(Page page, const SvMetaData *meta)
{
	return sv_refine_norm2(page, meta) + meta->refine_capacity;
}

/* The TID array of a refine page. */
ItemPointerData *
sv_refine_tids(Page page, const SvMetaData *meta)
{
	return (ItemPointerData *) (sv_refine_err2(page, meta) + meta->refine_capacity);
}

/* Write a refine entry into slot i of a refine page. */
void
sv_refine_put(Page page, const SvMetaData *meta, int i, const SvRefine *r, ItemPointer tid)
{
	memcpy(sv_refine_codes(page, meta) + (Size) i * meta->refine_bytes, r->code, meta->refine_bytes);
	sv_refine_lo(page, meta)[i] = r->lo;
	sv_refine_step(page, meta)[i] = r->step;
	sv_refine_norm2(page, meta)[i] = r->norm2;
	sv_refine_err2(page, meta)[i] = r->err2;
	sv_refine_tids(page, meta)[i] = *tid;
}

/* Copy refine slot src of page from to slot dst of page to. */
void
sv_refine_copy(Page to, int dst, Page from, int src, const SvMetaData *meta)
{
	memmove(sv_refine_codes(to, meta) + (Size) dst * meta->refine_bytes,
			sv_refine_codes(from, meta) + (Size) src * meta->refine_bytes, meta->refine_bytes);
	sv_refine_lo(to, meta)[dst] = sv_refine_lo(from, meta)[src];
	sv_refine_step(to, meta)[dst] = sv_refine_step(from, meta)[src];
	sv_refine_norm2(to, meta)[dst] = sv_refine_norm2(from, meta)[src];
	sv_refine_err2(to, meta)[dst] = sv_refine_err2(from, meta)[src];
	sv_refine_tids(to, meta)[dst] = sv_refine_tids(from, meta)[src];
}

/* Write entry slot i of a data page. */
void
sv_page_put(Page page, const SvMetaData *meta, int i, const uint8 *code, float alpha, float r2, ItemPointer tid)
{
	sv_fs_put(sv_page_codes(page, meta), meta->lanes, meta->code_bytes, i, code);
	if (meta->has_factors)
	{
		sv_page_alpha(page, meta)[i] = alpha;
		sv_page_r2(page, meta)[i] = r2;
	}
	sv_page_tids(page, meta)[i] = *tid;
}

/* A new, exclusively locked buffer at the end of the index (or a recycled free page). */
Buffer
sv_new_buffer(Relation index, ForkNumber fork)
{
	Buffer		buf;

	if (fork == MAIN_FORKNUM)
	{
		for (;;)
		{
			BlockNumber blk = GetFreeIndexPage(index);

			if (blk == InvalidBlockNumber)
				break;
			buf = ReadBuffer(index, blk);
			/* someone may have taken it since the FSM said it was free */
			if (ConditionalLockBuffer(buf))
			{
				Page		page = BufferGetPage(buf);

				/* a page never used, or one VACUUM recycled (repartition.c) */
				if (PageIsNew(page) || SvPageGetOpaque(page)->flags == SV_PAGE_FREE)
					return buf;
				LockBuffer(buf, BUFFER_LOCK_UNLOCK);
			}
			ReleaseBuffer(buf);
		}
	}
	LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	UnlockRelationForExtension(index, ExclusiveLock);
	return buf;
}
