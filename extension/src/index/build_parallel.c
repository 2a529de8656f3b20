/*
 * build_parallel.c: a parallel CREATE INDEX: the leader starts workers that scan parts of the table,
 * encode their rows and send the entries through shared-memory queues; the leader appends them.
 */
#include "postgres.h"

#include "build.h"

/*
 * Parallel build (PostgreSQL 17+, vector opclasses): after the leader has sampled the table and learnt
 * the centroids, max_parallel_maintenance_workers workers split the second heap pass (a parallel
 * table scan) with the leader.  Each assigns its rows to lists and encodes them (the costly part: a
 * distance to every centroid), and sends the entries to the leader through a message queue; the leader
 * encodes its own share and writes every list's pages as in a serial build, taking the workers' entries
 * between its own batches.  Sampling and k-means run in the leader alone.
 */
#define SV_KEY_SHARED UINT64CONST(0x5356424C44000001)
#define SV_KEY_CENTROIDS UINT64CONST(0x5356424C44000002)
#define SV_KEY_SCAN UINT64CONST(0x5356424C44000003)
#define SV_KEY_QUEUES UINT64CONST(0x5356424C44000004)
#define SV_QUEUE_BYTES ((Size) 4 * 1024 * 1024)

/* What the leader shares with the workers of a parallel build. */
typedef struct SvParallelShared
{
	Oid			heaprelid;
	Oid			indexrelid;
	bool		isconcurrent;
	SvMetaData	meta;			/* the final layout: lists, code and refine sizes */
	slock_t		mutex;
	double		reltuples;		/* rows the workers' scans saw, summed under mutex */
} SvParallelShared;

PGDLLEXPORT void sv_parallel_build_main(dsm_segment *seg, shm_toc *toc);

#if PG_VERSION_NUM >= 170000
/* Leave parallel mode after a parallel build (or an attempt at one). */
static void
sv_parallel_end(ParallelContext *pcxt, Snapshot snapshot)
{
	if (IsMVCCSnapshot(snapshot))
		UnregisterSnapshot(snapshot);
	DestroyParallelContext(pcxt);
	ExitParallelMode();
}

/*
 * Fill the parallel build's shared memory: what the workers need to know (*shared), the centroids, the
 * parallel table scan (*pscan) and one queue per worker, whose start is returned.
 */
static char *
sv_parallel_share(ParallelContext *pcxt, SvBuildState *bs, Relation heap, Relation index, IndexInfo *indexInfo,
				  Snapshot snapshot, Size scan_bytes, SvParallelShared **shared, ParallelTableScanDesc *pscan)
{
	Size		centroid_total = (Size) bs->meta.lists * bs->meta.centroid_bytes;
	int			nworkers = indexInfo->ii_ParallelWorkers;	/* as estimated by the caller */
	char	   *centroids;
	char	   *queues;

	*shared = shm_toc_allocate(pcxt->toc, sizeof(SvParallelShared));
	(*shared)->heaprelid = RelationGetRelid(heap);
	(*shared)->indexrelid = RelationGetRelid(index);
	(*shared)->isconcurrent = indexInfo->ii_Concurrent;
	(*shared)->meta = bs->meta;
	SpinLockInit(&(*shared)->mutex);
	(*shared)->reltuples = 0;
	shm_toc_insert(pcxt->toc, SV_KEY_SHARED, *shared);
	centroids = shm_toc_allocate(pcxt->toc, centroid_total);
	memcpy(centroids, bs->cache.centroids, centroid_total);
	shm_toc_insert(pcxt->toc, SV_KEY_CENTROIDS, centroids);
	*pscan = shm_toc_allocate(pcxt->toc, scan_bytes);
	table_parallelscan_initialize(heap, *pscan, snapshot);
	shm_toc_insert(pcxt->toc, SV_KEY_SCAN, *pscan);
	queues = shm_toc_allocate(pcxt->toc, (Size) nworkers * SV_QUEUE_BYTES);
	for (int i = 0; i < nworkers; i++)
		shm_mq_set_receiver(shm_mq_create(queues + (Size) i * SV_QUEUE_BYTES, SV_QUEUE_BYTES), MyProc);
	shm_toc_insert(pcxt->toc, SV_KEY_QUEUES, queues);
	return queues;
}

/* The leader's side: receive every worker's entries and append them; false when no worker started. */
bool
sv_build_parallel(SvBuildState *bs, Relation heap, Relation index, IndexInfo *indexInfo, double *reltuples)
{
	int			nworkers = indexInfo->ii_ParallelWorkers;
	Size		centroid_total = (Size) bs->meta.lists * bs->meta.centroid_bytes;
	ParallelContext *pcxt;
	Snapshot	snapshot;
	Size		scan_bytes;
	SvParallelShared *shared;
	char	   *queues;
	ParallelTableScanDesc pscan;
	double		leader_tuples;

	ereport(DEBUG1, (errmsg("shrinkvec index build: %d parallel workers planned", nworkers)));
	if (nworkers <= 0 || bs->meta.elemtype == SV_ELEM_BIT || centroid_total == 0)
		return false;
	EnterParallelMode();
	pcxt = CreateParallelContext("shrinkvec", "sv_parallel_build_main", nworkers);
	snapshot = indexInfo->ii_Concurrent ? RegisterSnapshot(GetTransactionSnapshot()) : SnapshotAny;
	scan_bytes = table_parallelscan_estimate(heap, snapshot);
	shm_toc_estimate_chunk(&pcxt->estimator, sizeof(SvParallelShared));
	shm_toc_estimate_chunk(&pcxt->estimator, centroid_total);
	shm_toc_estimate_chunk(&pcxt->estimator, scan_bytes);
	shm_toc_estimate_chunk(&pcxt->estimator, (Size) nworkers * SV_QUEUE_BYTES);
	shm_toc_estimate_keys(&pcxt->estimator, 4);
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		/* no dynamic shared memory: build serially */
		sv_parallel_end(pcxt, snapshot);
		return false;
	}
	queues = sv_parallel_share(pcxt, bs, heap, index, indexInfo, snapshot, scan_bytes, &shared, &pscan);

	LaunchParallelWorkers(pcxt);
	ereport(DEBUG1,
			(errmsg("shrinkvec index build: %d of %d parallel workers launched", pcxt->nworkers_launched, nworkers)));
	if (pcxt->nworkers_launched == 0)
	{
		sv_parallel_end(pcxt, snapshot);
		return false;
	}
	bs->nin = pcxt->nworkers_launched;
	bs->in = palloc(sizeof(shm_mq_handle *) * bs->nin);
	bs->in_done = palloc0(sizeof(bool) * bs->nin);
	for (int i = 0; i < bs->nin; i++)
		bs->in[i] = shm_mq_attach((shm_mq *) (queues + (Size) i * SV_QUEUE_BYTES), pcxt->seg,
								  pcxt->worker[i].bgwhandle);
	bs->nin_active = bs->nin;

	/* the leader scans its share of the table too, appending the workers' entries as they come */
	leader_tuples = table_index_build_scan(heap, index, indexInfo, true, true, sv_load_callback, bs,
										   table_beginscan_parallel(heap, pscan));
	if (bs->npending > 0)
		sv_flush_pending(bs);
	sv_drain_queues(bs, true);
	WaitForParallelWorkersToFinish(pcxt);
	*reltuples = shared->reltuples + leader_tuples;
	for (int i = 0; i < bs->nin; i++)
		shm_mq_detach(bs->in[i]);
	bs->nin = 0;
	sv_parallel_end(pcxt, snapshot);
	return true;
}
#endif

/* A worker of a parallel build: scan its part of the table, encode each row, send the entries. */
void
sv_parallel_build_main(dsm_segment *seg, shm_toc *toc)
{
	SvParallelShared *shared = shm_toc_lookup(toc, SV_KEY_SHARED, false);
	char	   *queues = shm_toc_lookup(toc, SV_KEY_QUEUES, false);
	LOCKMODE	heap_lock = shared->isconcurrent ? ShareUpdateExclusiveLock : ShareLock;
	LOCKMODE	index_lock = shared->isconcurrent ? RowExclusiveLock : AccessExclusiveLock;
	Relation	heap = table_open(shared->heaprelid, heap_lock);
	Relation	index = index_open(shared->indexrelid, index_lock);
	IndexInfo  *indexInfo = BuildIndexInfo(index);
	shm_mq	   *mq = (shm_mq *) (queues + (Size) ParallelWorkerNumber * SV_QUEUE_BYTES);
	SvBuildState bs;
	double		reltuples;

	indexInfo->ii_Concurrent = shared->isconcurrent;
	memset(&bs, 0, sizeof(bs));
	bs.index = index;
	bs.meta = shared->meta;
	bs.cache.meta = bs.meta;
	sv_cache_rotation(&bs.cache);
	bs.cache.centroids = shm_toc_lookup(toc, SV_KEY_CENTROIDS, false);
	bs.cache.centroid_norm2 = palloc(sizeof(float) * bs.meta.lists);
	for (int i = 0; i < bs.meta.lists; i++)
	{
		const float *c = (const float *) bs.cache.centroids + (Size) i * bs.meta.code_bits;

		bs.cache.centroid_norm2[i] = sv_kernels.dot(c, c, bs.meta.code_bits);
	}
	bs.tmpcxt = AllocSetContextCreate(CurrentMemoryContext, "shrinkvec build row", ALLOCSET_DEFAULT_SIZES);
	bs.code = palloc0(bs.meta.code_bytes);
	if (bs.meta.refine_bits > 0)
		bs.refine.code = palloc0(bs.meta.refine_bytes);
	bs.pending_x = palloc(sizeof(float) * SV_BUILD_BATCH * bs.meta.code_bits);
	bs.msg = palloc(SV_BUILD_BATCH * sv_entry_bytes(&bs.meta));
	shm_mq_set_sender(mq, MyProc);
	bs.out = shm_mq_attach(mq, seg, NULL);
	reltuples = table_index_build_scan(heap, index, indexInfo, true, false, sv_load_callback, &bs,
									   table_beginscan_parallel(heap, shm_toc_lookup(toc, SV_KEY_SCAN, false)));
	if (bs.npending > 0)
		sv_flush_pending(&bs);
	SpinLockAcquire(&shared->mutex);
	shared->reltuples += reltuples;
	SpinLockRelease(&shared->mutex);
	shm_mq_detach(bs.out);
	index_close(index, index_lock);
	table_close(heap, heap_lock);
}
