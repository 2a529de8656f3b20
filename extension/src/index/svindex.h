/*
 * svindex.h: the shrinkvec index access method, private to index/ (named so as not to be taken for
 * PostgreSQL's catalog/index.h).
 *
 * The index stores only compact codes, packed many to a page beside their heap TIDs, so a scan is
 * a tight kernel loop over page contents instead of per-row executor work.
 *
 * Relation layout (every page has a standard header and an SvPageOpaque special space; pd_lower
 * covers the whole contents, so GenericXLog logs changed bytes and never treats data as a hole):
 *   block 0                  meta page (SvMetaData)
 *   centroid pages           the lists' centroids as one byte stream (lists * centroid_bytes)
 *   directory pages          one SvListEntry per list: first page and insert page of its chain
 *   data pages               entries of one list; each list is a chain of pages linked by next
 *
 * A data page holds up to meta.capacity entries in arrays: the codes, blocked (below), starting 64
 * bytes into the page; then, for vector opclasses, alpha[capacity] and r2[capacity] (floats); then
 * tids[capacity].  Format version 2 blocks the codes by meta.lanes = 32 (kernels.h, "Blocked
 * codes"): byte p of entry j of a block is at p * 32 + j, so the scan kernel reads byte p of 32
 * codes with one load, and capacity is a multiple of 32.  Codes too long for a block of 32 on a
 * page (over 1,912 bits) use lanes = 1, the plain row-major layout, scanned by portable code.
 * Version 1 stored codes row-major without blocks; a version 1 index must be rebuilt (REINDEX).
 * Version 3 added the rotation (below); an index of version 1 or 2 must be rebuilt (REINDEX).
 *
 * Rotation (vector opclasses, WITH (rotate = on), the default): every vector, row or query, is taken
 * over its coded dims (the first code_bits, normalised first for cosine), then rotated by the seeded
 * random orthogonal map of kernels/rotate.c (meta.rotation_rounds rounds from meta.rotation_seed;
 * codes.py: rotate).  Everything the index stores and computes is in those rotated coordinates: the
 * centroids (k-means over rotated rows), the residuals r = x - c, their sign and refine codes, the
 * query's tables.  A rotation keeps every distance, so the lists are the same as without it; what it
 * changes is that the variance of r, however unevenly the data spread it over the dims (Matryoshka
 * models, PCA), comes out spread over all of them, which is what one grid per code assumes.
 *
 * Refine codes (vector opclasses, WITH (refine = B), B = 2, 4 or 8): a finer code of every entry, kept
 * on refine pages of their own so the 1-bit scan stays dense.  The first bytes of a data page's
 * contents (before its codes) hold the blocks of its refine pages (SV_MAX_REFINE_PAGES at most):
 * entry i of the data page has its refine code on refine page i / refine_capacity, slot i %
 * refine_capacity.  A refine page holds arrays codes[refine_capacity][refine_bytes], lo, step, norm2
 * and err2 (floats) and the entries' TIDs, which a scan compares with the data page's (an entry moved by
 * VACUUM since the scan read its data page is then never misjudged: it is simply kept).  The code of x
 * against its list's centroid c: r = x - c over the coded dims, lo = min r, step = (max r - lo) /
 * (2^B - 1), u_i = rint((r_i - lo) / step) (0 when step is 0), packed B bits a dim, most significant
 * first; norm2 = |x|^2 over the coded dims; err2 = sum of (r_i - (lo + step u_i))^2 (float terms, summed in
 * double).  Then <q, x> ~ <q, c> + lo * sum(q) + step * <q, u>, and after the rotation the error <q, e>
 * behaves as a normal variable of sd |q| sqrt(err2 / dims): the scan's bound (scan_rerank.c).
 *
 * Codes:
 *   bit_hamming_ops: the bit string itself (zero-padded to code_bytes).
 *   vector opclasses: x is the vector (normalised for cosine) over its first code_bits dims; c is
 *   the centroid of the entry's list; the code is the sign bits of r = x - c, alpha = mean |r_i|
 *   (the least-squares scale of the signs) and r2 = |r|^2.  Then <q, x> ~ <q, c> + alpha * <q, s>
 *   with s_i = +-1.  A scan quantizes the query (or query - centroid) once to 5-bit integers v
 *   (w ~ delta v) and sums them over each code's set bits with the SIMD nibble-table kernel; the
 *   estimate uses that sum (<q, s> ~ delta (2 sum - sum v)), within alpha err_l1 of the float query's
 *   (kernels.h), so the kernel's test against the k-th best is the whole selection (0.4.0 scored the
 *   kept codes again with the float query; issue 29 measured the same recall at a fraction of the cost).
 *   Extreme values: alpha or r2 of +Infinity (a residual whose square overflowed float, or a cosine row
 *   whose float norm under- or overflows: sv_mark_unknown) marks an entry whose estimate is unknown; a
 *   scan never skips it and reads its row (scan.c).  Refine codes: lo, step or norm2 not finite.
 */
#ifndef SHRINKVEC_SVINDEX_H
#define SHRINKVEC_SVINDEX_H

#include "postgres.h"

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/relscan.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "postmaster/autovacuum.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/relcache.h"
#include "shrinkvec.h"

#define SV_INDEX_MAGIC 0x53564958	/* "SVIX" */
#define SV_INDEX_VERSION 4
#define SV_INDEX_MIN_VERSION 3		/* version 3 reads as version 4 at generation 0 (zeros in the new fields) */
#define SV_CODES_OFFSET 64			/* page offset of the codes array (64-byte aligned) */
#define SV_META_BLKNO 0
#define SV_PAGE_ID 0xFF91			/* last two bytes of every page, for pg_filedump */

/* The rotation every vector index is built with (codes.py: ROTATION_ROUNDS, ROTATION_SEED). */
#define SV_ROTATION_ROUNDS 2
#define SV_ROTATION_SEED UINT64CONST(0x5348524B56454331)

/* Limits. */
#define SV_MAX_REFINE_PAGES 10		/* refine pages per data page: their blocks fit before the codes */
#define SV_INDEX_MAX_BITS 16000		/* longest code (bits, or coded dims) */
#define SV_INDEX_MAX_LISTS 32768
#define SV_INDEX_MAX_SHORTLIST 100000

/* Page kinds (SvPageOpaque.flags). */
#define SV_PAGE_META 1
#define SV_PAGE_CENTROIDS 2
#define SV_PAGE_DIRECTORY 3
#define SV_PAGE_DATA 4
#define SV_PAGE_REFINE 5
#define SV_PAGE_COARSE 6
#define SV_PAGE_FREE 7				/* retired, no scan can still read it: recorded in the FSM for reuse */
#define SV_PAGE_RESERVED 8			/* a recycled page a build or re-partition claimed, written later */

/* Support functions of every opclass. */
#define SV_KIND_PROC 1				/* the distance kind (SV_KIND_*) */
#define SV_TYPE_PROC 2				/* the indexed type: a pointer to an SvTypeInfo */

/* Strategy numbers of the ORDER BY operators. */
#define SV_STRATEGY_DISTANCE 1		/* the opclass's distance (float8): <->, <#>, <=>, or <~> on bits */
#define SV_STRATEGY_PREFIX_HAMMING 2	/* bit_hamming_ops: <^>, Hamming over the query's prefix (integer) */

/* Distance kinds, from the opclass's support function 1. */
#define SV_KIND_HAMMING 1
#define SV_KIND_L2 2
#define SV_KIND_IP 3
#define SV_KIND_COSINE 4

/* Indexed element types. */
#define SV_ELEM_BIT 1
#define SV_ELEM_VECTOR 2
#define SV_ELEM_HALFVEC 3

/* What support function 2 of an opclass returns: the type its indexed values have. */
typedef struct SvTypeInfo
{
	int			elemtype;		/* SV_ELEM_* */
} SvTypeInfo;

/* Special space of every page. */
typedef struct SvPageOpaque
{
	BlockNumber next;			/* data pages: next page of the same list */
	uint32		list;			/* data pages: the list */
	uint16		count;			/* data pages: entries in use */
	uint16		flags;			/* SV_PAGE_* */
	uint16		retired;		/* 0: live; else sv_retire_tag of the generation a re-partition replaced */
	uint16		page_id;		/* SV_PAGE_ID */
} SvPageOpaque;

/* Contents of the meta page.  Everything but build_rows is fixed at build. */
typedef struct SvMetaData
{
	uint32		magic;
	uint32		version;
	int32		kind;			/* SV_KIND_* */
	int32		elemtype;		/* SV_ELEM_* */
	int32		dims;			/* dimensions of the indexed vectors (bits for bit columns) */
	int32		code_bits;		/* bits per code */
	int32		code_bytes;		/* bytes per stored code: code_bits rounded up to 8 bytes */
	int32		has_factors;	/* entries carry alpha and r2 (vector opclasses) */
	int32		capacity;		/* entries per data page */
	int32		lists;			/* number of lists (1 = flat) */
	int32		centroid_bytes; /* bytes per centroid (0 for a flat bit index) */
	BlockNumber centroid_start;
	int32		centroid_pages;
	BlockNumber directory_start;
	int32		directory_pages;
	int64		build_rows;		/* rows indexed by the build */
	int32		lanes;			/* codes per block: 32, or 1 (row-major) for long codes */
	/* refine codes (WITH (refine = B)); all 0 without them, as in indexes built before they existed */
	int32		refine_bits;	/* bits per coded dim: 0 (none), 2, 4 or 8 */
	int32		refine_bytes;	/* bytes per stored refine code: code_bits * refine_bits rounded up to 8 bytes */
	int32		refine_capacity;	/* entries per refine page */
	int32		refine_pages;	/* refine pages per data page at most */
	/* the coarse level over the centroids of an IVF vector index, for inserts (0 groups: none) */
	int32		coarse_groups;
	BlockNumber coarse_start;
	int32		coarse_pages;
	/* the rotation of the coded dims (vector opclasses, WITH (rotate = on); 0 rounds: none) */
	int32		rotation_rounds;
	int32		unused;
	uint64		rotation_seed;
	/* the scan settings chosen at build for WITH (target_recall = R) (calibrate.c; 0: none chosen) */
	int32		calib_probes;
	int32		calib_shortlist;
	float		calib_recall;	/* the recall they reached on the sample */
	float		calib_target;	/* R */
	/* version 4: re-partitioning (repartition.c); all 0 in an index of version 3 */
	uint32		generation;		/* re-partitions so far: the structure above is generation's */
	int32		unused2;
	uint64		retired_xid;	/* FullTransactionId when the last generation's pages were retired; 0: none waiting */
	int64		last_repartition;	/* TimestampTz of the last re-partition (0: never) */
} SvMetaData;

/* One list of the directory. */
typedef struct SvListEntry
{
	BlockNumber first;			/* first page of the chain */
	BlockNumber insert;			/* a page at or before the first one with room (a hint) */
} SvListEntry;

/* Index options (WITH (...)). */
typedef struct SvOptions
{
	int32		vl_len_;
	int			lists;			/* 1 = flat, 0 = from the row count (vector opclasses; flat for bit) */
	int			bits;			/* vector opclasses: coded dims (0 = all) */
	int			refine;			/* vector opclasses: bits per dim of the refine codes (0 = none) */
	bool		rotate;			/* vector opclasses: rotate the coded dims (default true) */
	double		target_recall;	/* vector opclasses: the recall the build chooses probes and shortlist for */
	/* scan settings of the index (0, or -1 for rerank: not set) */
	int			shortlist;
	int			probes;
	int			rerank;
} SvOptions;

/*
 * The fixed part of an index, cached per backend (cache.c): meta page and centroids of one generation.
 * A retired cache's memory lives to the end of the transaction, so a scan copies the struct (small) at
 * rescan and keeps reading the generation it started with, whatever invalidations or re-partitions happen.
 */
/* Slots of the buffer hints of an index's cache (a power of two; 64 kB a backend and index). */
#define SV_RECENT_SLOTS 8192

typedef struct SvIndexCache
{
	SvMetaData	meta;
	char	   *centroids;		/* lists * centroid_bytes */
	float	   *centroid_norm2; /* vector opclasses: |c|^2 per list */
	uint32	   *rotation_masks; /* the rotation's sign flips (sv_cache_rotation; NULL without one) */
	/* the coarse level (meta.coarse_groups > 0) */
	float	   *coarse;			/* coarse_groups centroids of the centroids */
	float	   *coarse_norm2;
	int32	   *coarse_offsets; /* group g's lists are coarse_lists[coarse_offsets[g] .. coarse_offsets[g + 1]) */
	int32	   *coarse_lists;
	struct SvRecentHints *recent;	/* sv_read_recent's hints (this backend's, kept across generations) */
} SvIndexCache;

/* Where this backend last found pages (sv_read_recent): direct-mapped by block number. */
typedef struct SvRecentHints
{
	BlockNumber blk[SV_RECENT_SLOTS];
	Buffer		buf[SV_RECENT_SLOTS];	/* InvalidBuffer: an empty slot */
} SvRecentHints;

/*
 * The coarse level: an IVF vector index of at least SV_COARSE_MIN_LISTS lists groups its centroids
 * into about sqrt(lists) groups (k-means over the centroids, at build).  An insert compares its row
 * with the group centroids, then with the centroids of the SV_COARSE_PROBES nearest groups only: about
 * (1 + SV_COARSE_PROBES) sqrt(lists) distances instead of lists.  The list it picks is the nearest of
 * those (nearly always the nearest of all; bench_insert.py measures how often).  Stored after the
 * centroids as one stream: the group centroids, the offsets, then the lists grouped.
 */
#define SV_COARSE_MIN_LISTS 64
#define SV_COARSE_PROBES 4

/* Defaults derived at build (WITH (lists = 0), the default) and at scan (shrinkvec.probes = 0). */
#define SV_AUTO_FLAT_ROWS 20000		/* up to this many rows: flat */
#define SV_AUTO_PROBES_DIVISOR 5	/* probes = ceil(lists / 5) */
#define SV_DEFAULT_SHORTLIST 100	/* shrinkvec.shortlist = 0 on an index without a chosen one */
#define SV_DEFAULT_TARGET_RECALL 0.95	/* WITH (target_recall) */

/*
 * The bound-driven rerank of the first batch (refine codes): rows are read in the order of their refine
 * lower bounds (the estimate less SV_REFINE_BOUND_SIGMAS standard deviations of its error) until the
 * SV_REFINE_DIRECT-th nearest row read is no farther than the next unread bound, or shrinkvec.rerank rows
 * were read (a cap); those SV_REFINE_DIRECT rows go out at once, in exact order.
 */
#define SV_REFINE_BOUND_SIGMAS 3.0
#define SV_REFINE_BOUND_SLACK 1e-5
#define SV_REFINE_DIRECT 20

/* GUCs. */
extern int	sv_shortlist;
extern int	sv_probes;
extern int	sv_max_scan_tuples;
extern double sv_order_margin;
extern int	sv_rerank;

/*
 * The settings one scan uses.  Each comes from the first of: the session's GUC (shrinkvec.probes or
 * .shortlist above 0, shrinkvec.rerank set anywhere but its default), the index's own WITH (probes,
 * shortlist, rerank) (ALTER INDEX ... SET: every client gets them, connection poolers and clients that
 * cannot SET included), the probes and shortlist chosen at build for target_recall, the defaults (a fifth
 * of the lists, 100, 200).
 */
typedef struct SvScanSettings
{
	int			probes;			/* 1 .. lists */
	int			shortlist;
	int			rerank;
} SvScanSettings;

/* The settings a scan of index (its meta data of one generation) uses now. */
SvScanSettings sv_scan_settings(Relation index, const SvMetaData *meta);

/* Bytes of page contents available to entries. */
#define SV_PAGE_CONTENT_SIZE \
	(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(SvPageOpaque)))
#define SvPageGetOpaque(page) ((SvPageOpaque *) PageGetSpecialPointer(page))
#define SvPageGetMeta(page) ((SvMetaData *) PageGetContents(page))

/* ---- handler.c: the handler, options, GUCs and cost estimate ---- */

/* Register the reloptions and GUCs (from _PG_init). */
void		sv_index_init(void);

/* ---- page.c: page layout ---- */

/* Initialise a page of the given kind with an empty contents area counted as used. */
void		sv_page_init(Page page, uint16 flags, uint32 list);

/* Pointers into a data page's arrays (the codes are blocked: use sv_fs_put/sv_fs_get per entry). */
uint8	   *sv_page_codes(Page page, const SvMetaData *meta);
float	   *sv_page_alpha(Page page, const SvMetaData *meta);
float	   *sv_page_r2(Page page, const SvMetaData *meta);
ItemPointerData *sv_page_tids(Page page, const SvMetaData *meta);

/* Copy entry i's code out of a data page into code (code_bytes). */
void		sv_page_get_code(Page page, const SvMetaData *meta, int i, uint8 *code);

/* Write entry slot i of a data page: its code, alpha and r2 (vector opclasses) and TID. */
void		sv_page_put(Page page, const SvMetaData *meta, int i, const uint8 *code, float alpha, float r2,
						ItemPointer tid);

/* Entries per data page and codes per block for codes of code_bytes (with alpha and r2 or not). */
void		sv_page_capacity(int code_bytes, bool has_factors, int *capacity, int *lanes);

/* Set meta's refine layout for refine_bits (0: none); may lower the data page capacity to fit. */
void		sv_refine_layout(SvMetaData *meta, int refine_bits);

/* The refine page blocks of a data page (SV_MAX_REFINE_PAGES of them; InvalidBlockNumber = none yet). */
BlockNumber *sv_page_refine_blocks(Page page);

/* Pointers into a refine page's arrays. */
uint8	   *sv_refine_codes(Page page, const SvMetaData *meta);
float	   *sv_refine_lo(Page page, const SvMetaData *meta);
float	   *sv_refine_step(Page page, const SvMetaData *meta);
float	   *sv_refine_norm2(Page page, const SvMetaData *meta);
float	   *sv_refine_err2(Page page, const SvMetaData *meta);
ItemPointerData *sv_refine_tids(Page page, const SvMetaData *meta);

/* One entry's refine code and factors. */
typedef struct SvRefine
{
	uint8	   *code;			/* refine_bytes */
	float		lo;
	float		step;
	float		norm2;
	float		err2;			/* |r - (lo + step u)|^2: the code's squared error, clipped dims included */
} SvRefine;

/* Write a refine entry into slot i of a refine page. */
void		sv_refine_put(Page page, const SvMetaData *meta, int i, const SvRefine *r, ItemPointer tid);

/* Copy refine slot src of page from to slot dst of page to (the same page or another). */
void		sv_refine_copy(Page to, int dst, Page from, int src, const SvMetaData *meta);

/* A new, exclusively locked buffer at the end of the index (or a recycled free page). */
Buffer		sv_new_buffer(Relation index, ForkNumber fork);

/* ---- cache.c: the cached meta data ---- */

/*
 * The index's meta page and centroids, cached by this backend and read again when the meta page shows a
 * newer generation (a re-partition by another backend) or a relcache invalidation came.  The returned
 * struct and its arrays stay valid to the end of the transaction.
 */
SvIndexCache *sv_index_cache(Relation index);

/* Register the index caches' invalidation and end-of-transaction callbacks (from _PG_init). */
void		sv_cache_init(void);

/* The retired tag of pages of generation gen (never 0). */
static inline uint16
sv_retire_tag(uint32 gen)
{
	return (uint16) (gen % 65535 + 1);
}

/* Is the page retired from a generation older than the meta data's (no longer part of the index)? */
static inline bool
sv_page_stale(Page page, const SvMetaData *meta)
{
	uint16		r = ((SvPageOpaque *) PageGetSpecialPointer(page))->retired;

	return r != 0 && r != sv_retire_tag(meta->generation);
}

/* Make cache->rotation_masks from cache->meta (in the current memory context; NULL without a rotation). */
void		sv_cache_rotation(SvIndexCache *cache);

/* Copy n bytes from a stream of pages starting at block start into dst. */
void		sv_read_stream(Relation index, BlockNumber start, char *dst, Size n);

/* Read list i's directory entry. */
SvListEntry sv_read_list(Relation index, const SvMetaData *meta, int list);

/* sv_read_list, through sv_read_recent when recent is set (scans). */
SvListEntry sv_read_list_cached(Relation index, const SvMetaData *meta, int list, bool recent);

/*
 * ReadBuffer(index, blk) for scans: the buffer the page was last found in is pinned directly when it still
 * holds the page (ReadRecentBuffer), skipping the lookup in the shared buffer mapping table.
 */
Buffer		sv_read_recent(Relation index, BlockNumber blk);

/* The opclass's distance kind and the indexed element type. */
int			sv_index_kind(Relation index);
int			sv_index_elemtype(Relation index);

/* ---- encode.c: rows and queries into codes ---- */

/* What a vector datum is converted for: a row going into the index, or a scan's query. */
typedef enum SvConvertFor
{
	SV_FOR_ROW,
	SV_FOR_QUERY
} SvConvertFor;

/*
 * The coded part of a vector or halfvec datum as floats (rows and queries alike): the first code_bits
 * dims, normalised over all dims for cosine, then rotated (meta.rotation_rounds > 0).  Returns false for
 * a zero vector under cosine (x is zero).  *unknown (when not NULL) is set for a row or query whose
 * estimate cannot be trusted: a cosine norm float cannot hold, or a rotation clamped to float's range.
 */
bool		sv_datum_to_floats(Datum value, const SvIndexCache *cache, SvConvertFor purpose, float *x,
							   bool *unknown);

/*
 * Rotate the code_bits floats x in place by the index's rotation (a no-op without one); true when the
 * vector is longer than float's range and rotated values were clamped to +-FLT_MAX.
 */
bool		sv_rotate_coded(const SvIndexCache *cache, float *x);

/* Undo the index's rotation of the code_bits floats x in place (a no-op without one). */
void		sv_unrotate_coded(const SvIndexCache *cache, float *x);

/*
 * Squared norms below which a cosine row's float norm may underflow (pgvector then returns 0, 2 or NaN
 * whatever its direction): such a row, as one above SV_SAFE_NORM2, is indexed with an unknown estimate.
 */
#define SV_TINY_NORM2 1e-30

/*
 * Squared norms up to which float distance arithmetic (|q|^2 + |c|^2 - 2 <q, c>, the scan's estimates)
 * cannot overflow: every term is at most 4e36, far below FLT_MAX (3.4e38).  Vectors are finite, but a
 * value above ~1.8e19 overflows its square: beyond this bound the index computes in double.
 */
#define SV_SAFE_NORM2 1e36f

/* Is a squared norm small enough for the float arithmetic (false for +Inf and NaN)? */
static inline bool
sv_norm2_safe(float n2)
{
	return n2 <= SV_SAFE_NORM2;
}

/* Encode x against centroid c: sign bits of x - c, alpha and r2 (vector opclasses). */
void		sv_encode(const SvMetaData *meta, const float *x, const float *c, uint8 *code, float *alpha, float *r2);

/* Encode x against centroid c (NULL: zero) into a refine code (see "Refine codes" above). */
void		sv_refine_encode(const SvMetaData *meta, const float *x, const float *c, SvRefine *out);

/*
 * Mark an entry's estimate unknown: alpha = +Infinity (and refine norm2 = +Infinity).  A scan never
 * skips such an entry and gives it the estimate -Infinity, so its exact distance decides.
 */
void		sv_mark_unknown(float *alpha, SvRefine *refine);

/* One row's whole entry: sign code, factors, refine code (when the index has them), unknown mark. */
void		sv_encode_row(const SvMetaData *meta, const float *x, const float *c, bool unknown, uint8 *code,
						  float *alpha, float *r2, SvRefine *refine);

/* Encode a bit datum: the first code_bits bits, zero-padded; errors on a wrong length. */
void		sv_encode_bits(const SvMetaData *meta, Datum value, uint8 *code);

/* The error for a bit string of the wrong length: "different bit lengths %d and %d" (+ hint). */
SV_NORETURN void sv_bit_length_error(int code_bits, int len, const char *hint);

/* ---- kmeans.c: k-means and nearest centroids (a leaf: it calls only the kernels) ---- */

/* k-means over n points of dim floats into k centroids (k <= n); deterministic. */
void		sv_kmeans_float(const float *points, int n, int dim, int k, float *centroids);

/* k-majority over n bit codes of nbytes into k binary centroids (k <= n); deterministic. */
void		sv_kmeans_bits(const uint8 *codes, int n, int nbytes, int nbits, int k, uint8 *centroids);

/*
 * The nearest of k centroids (squared L2) to each of n points, written to out.  Works in blocks of
 * rows, centroid by centroid, so each centroid is read from cache once per block instead of once per
 * point: with 1000 centroids of 768 dims the centroids (3 MB) do not fit in L2.
 */
void		sv_nearest_centroids(const float *centroids, const float *cnorm2, int k, int dim,
								 const float *points, int n, int *out);

/* |x - c|^2 summed in double (finite for any finite floats). */
double		sv_l2sq_double(const float *x, const float *c, int dim);

/* ---- ivf.c: lists and the coarse level ---- */

/* The list nearest to x (squared L2 to the centroids), or to a bit code (Hamming). */
int			sv_nearest_list(const SvIndexCache *cache, const float *x, const uint8 *code);

/* Build the coarse level of a cache whose centroids are set (meta.coarse_groups set by the caller). */
void		sv_coarse_build(SvIndexCache *cache);

/* Attach a coarse stream read from the index (sv_coarse_bytes) to a cache. */
void		sv_coarse_attach(SvIndexCache *cache, char *stream, MemoryContext cxt);

/* Bytes of the coarse level's stream. */
Size		sv_coarse_bytes(const SvMetaData *meta);

/* The list nearest to x among the lists of the nearest groups of the coarse level. */
int			sv_coarse_nearest_list(const SvIndexCache *cache, const float *x);

/* The lists in probe order into order[lists]: by score[list] ascending, then list number (scans, calibration). */
void		sv_order_lists(const double *score, int lists, int *order);

/* ---- insert.c: adding entries ---- */

/* Point list's directory entry at a new insert page (WAL-logged). */
void		sv_set_insert_page(Relation index, const SvMetaData *meta, int list, BlockNumber blk);

/*
 * Add one entry to list's chain, extending it when full (WAL-logged); false, with nothing written, at a
 * retired page unless ignore_retired (the caller holds the re-partition lock: the mark is stale).
 */
bool		sv_insert_entry(Relation index, const SvIndexCache *cache, int list, const uint8 *code,
							float alpha, float r2, const SvRefine *refine, ItemPointer tid, bool ignore_retired);

/* ---- inspect.c ---- */

/* The table of an index, for the SQL function fname; errors for a relation that is not an index, or a partitioned one. */
Oid			sv_index_table(Oid indexoid, const char *fname);

/* ---- repartition.c: lists that follow the table ---- */

/*
 * The re-partition lock: a heavyweight lock on the index as an object (sub-id 0x5356, used by nothing
 * else), held exclusively while a re-partition retires the pages inserts may still write and switches
 * the meta page; an insert that met a retired page takes it shared.  Not a page lock: PostgreSQL treats
 * those specially (no other heavyweight lock may be taken while one is held).
 */
#define SV_REPARTITION_LOCK_SUBID 0x5356

/* A re-partition is due when the index holds this many times the rows of its last partitioning. */
#define SV_REPARTITION_GROWTH 2

/* PostgreSQL 17 renamed IsAutoVacuumWorkerProcess (postmaster/autovacuum.h then, miscadmin.h now). */
#if PG_VERSION_NUM < 170000
#define AmAutoVacuumWorkerProcess() IsAutoVacuumWorkerProcess()
#endif
#define sv_lock_repartition(index, mode) \
	LockDatabaseObject(RelationRelationId, RelationGetRelid(index), SV_REPARTITION_LOCK_SUBID, (mode))
#define sv_unlock_repartition(index, mode) \
	UnlockDatabaseObject(RelationRelationId, RelationGetRelid(index), SV_REPARTITION_LOCK_SUBID, (mode))

/* The entry count from which a re-partition is due (-1: never). */
int64		sv_repartition_at(Relation index, const SvMetaData *meta);

/* Is a re-partition due for an index of meta holding entries entries? */
bool		sv_repartition_due(Relation index, const SvMetaData *meta, int64 entries);

/*
 * VACUUM's part: recycle the pages retired by past re-partitions once no scan can read them, and
 * re-partition an index that holds entries entries when due.
 */
void		sv_vacuum_growth(IndexVacuumInfo *info, int64 entries);

/* ---- access method callbacks (build.c, insert.c, vacuum.c, scan.c) ---- */
IndexBuildResult *sv_ambuild(Relation heap, Relation index, IndexInfo *indexInfo);
void		sv_ambuildempty(Relation index);
bool		sv_aminsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
						Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
						IndexInfo *indexInfo);
IndexBulkDeleteResult *sv_ambulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
									   IndexBulkDeleteCallback callback, void *callback_state);
IndexBulkDeleteResult *sv_amvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats);
IndexScanDesc sv_ambeginscan(Relation index, int nkeys, int norderbys);
void		sv_amrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys);
bool		sv_amgettuple(IndexScanDesc scan, ScanDirection dir);
void		sv_amendscan(IndexScanDesc scan);

#endif
