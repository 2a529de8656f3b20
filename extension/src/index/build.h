/*
 * build.h: the state of CREATE INDEX, private to the build files:
 *   build.c           ambuild and ambuildempty: the index's meta data, memory checks, the passes
 *   build_load.c      sampling, centroids, encoding rows and writing the lists' pages
 *   build_parallel.c  a parallel build: the leader and its workers (which encode and send entries)
 */
#ifndef SHRINKVEC_BUILD_H
#define SHRINKVEC_BUILD_H

#include <math.h>

#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "storage/spin.h"
#include "utils/snapmgr.h"
#include "optimizer/plancat.h"
#include "utils/lsyscache.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "svindex.h"
#include "kernels/kernels.h"
#include "shrinkvec.h"

#define SV_BUILD_BATCH 256

/* State of a build. */
typedef struct SvBuildState
{
	Relation	index;
	SvMetaData	meta;
	SvIndexCache cache;			/* meta and centroids, as scans will see them */
	MemoryContext tmpcxt;		/* reset for every row */
	uint8	   *code;			/* code_bytes */

	/* sampling pass */
	int			sample_target;
	int			nsample;
	int64		seen;
	char	   *sample;			/* sample_target items of item_bytes */
	int			item_bytes;
	pg_prng_state prng;

	/* loading pass */
	Page	   *pages;			/* one in-memory page per list */
	BlockNumber *blocks;		/* the block reserved for each list's in-memory page */
	BlockNumber *first;			/* first block of each list */
	int64		indexed;

	/* refine codes: one in-memory refine page per list, for its in-memory data page */
	Page	   *rpages;
	BlockNumber *rblocks;		/* the block reserved for each list's in-memory refine page */
	SvRefine	refine;

	/* vector rows waiting for their lists, assigned a block at a time */
	shm_mq_handle *out;			/* a parallel worker: entries go to the leader instead of pages */
	shm_mq_handle **in;			/* the leader of a parallel build: the workers' queues */
	bool	   *in_done;
	int			nin;
	int			nin_active;
	char	   *msg;			/* a worker's message: SV_BUILD_BATCH encoded entries */
	float	   *pending_x;		/* SV_BUILD_BATCH * code_bits */
	ItemPointerData pending_tid[SV_BUILD_BATCH];
	int			pending_list[SV_BUILD_BATCH];
	bool		pending_unknown[SV_BUILD_BATCH];	/* sv_datum_to_floats: the estimate is unknown */
	int			npending;

	/* a re-partition (repartition.c): the meta page is not written; the caller switches it */
	bool		keep_meta;
	struct SvBlockList *allocated;	/* a re-partition's: every block it took (freed again if it fails) */
} SvBuildState;

/* Blocks a re-partition took for its new generation. */
typedef struct SvBlockList
{
	BlockNumber *blocks;
	int			n;
	int			max;
} SvBlockList;

/* ---- build.c ---- */

/* Does the index take its lists from the row count (a vector opclass without WITH (lists = ...))? */
bool sv_auto_lists(Relation index, const SvMetaData *meta);

/* The lists of an index whose lists follow the row count, for rows rows. */
int sv_auto_list_count(int64 rows);

/* How many rows to sample for the centroids (heap: for its estimated row count). */
int sv_sample_target(SvBuildState *bs, Relation heap, Relation index);

/* The centroids (and calibration) learned from bs->sample; frees it. */
void sv_centroids_from_sample(SvBuildState *bs, Relation index);

/* ---- build_load.c ---- */

/* Fill meta from the index definition and its options; errors on unsupported definitions. */
void sv_build_meta(Relation index, SvMetaData *meta);

/* Reservoir-sample one row's coded part. */
void sv_sample_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull, bool alive, void *arg);

/* Learn the centroids from the sample (the mean for a flat vector index). */
void sv_learn_centroids(SvBuildState *bs);

/*
 * An encoded entry as a parallel worker sends it to the leader: list, TID, alpha, r2, code, then (with
 * refine codes) lo, step, norm2 and the refine code.
 */
Size sv_entry_bytes(const SvMetaData *meta);

/*
 * The leader of a parallel build: append the entries waiting in the workers' queues; with wait, until
 * every worker has finished.
 */
void sv_drain_queues(SvBuildState *bs, bool wait);

/* Assign the pending vector rows to their lists together, then encode and append each. */
void sv_flush_pending(SvBuildState *bs);

/* Encode one row and append it to its list (vector rows wait for a batch). */
void sv_load_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull, bool alive, void *arg);

/* Write meta, centroids, directory and empty first pages; the lists' first blocks are reserved. */
void sv_write_layout(SvBuildState *bs, ForkNumber fork);

/* Write every list's last in-memory page and the final row count. */
void sv_finish_layout(SvBuildState *bs, ForkNumber fork);

/* Set up the state shared by a build and an empty build. */
void sv_build_init(SvBuildState *bs, Relation index);

/* ---- calibrate.c ---- */

/* Fewer sampled rows a list than this: the calibration's queries are not held out of k-means. */
#define SV_CALIB_MIN_ROWS_PER_LIST 16

/* Move the calibration's query rows to the end of the sample; returns how many (0: no calibration). */
int sv_calibrate_hold_out(SvBuildState *bs, double target);

/* Choose meta's probes and shortlist for recall target from the sample and its nq held-out rows. */
void sv_calibrate(SvBuildState *bs, double target, int nq);

/* ---- build_parallel.c ---- */

/* The leader's side: receive every worker's entries and append them; false when no worker started. */
bool sv_build_parallel(SvBuildState *bs, Relation heap, Relation index, IndexInfo *indexInfo, double *reltuples);

#endif
