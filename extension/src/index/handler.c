/*
 * handler.c: the shrinkvec access method's handler, options, GUCs and cost estimate.
 */
#include "postgres.h"

#include <float.h>

#include "access/amapi.h"
#include "access/reloptions.h"
#include "commands/vacuum.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
#include "utils/spccache.h"

#include "svindex.h"

int			sv_shortlist = 0;
int			sv_probes = 0;
int			sv_max_scan_tuples = 50000;
double		sv_order_margin = 1.5;
int			sv_rerank = 200;
static relopt_kind sv_relopt_kind;

/* Is shrinkvec.rerank set (anywhere but its built-in default)?  Kept with each stacked value (assign hook). */
static bool sv_rerank_set = false;

/* Check hook of shrinkvec.rerank: note in extra whether the value comes from anywhere but the default. */
static bool
sv_rerank_check(int *newval, void **extra, GucSource source)
{
#if PG_VERSION_NUM >= 160000
	bool	   *set = guc_malloc(LOG, sizeof(bool));	/* guc.c frees it with guc_free */
#else
	bool	   *set = malloc(sizeof(bool));
#endif

	if (set == NULL)
		return false;
	*set = source > PGC_S_DEFAULT;
	*extra = set;
	return true;
}

/* Assign hook of shrinkvec.rerank: whether the value in force was set. */
static void
sv_rerank_assign(int newval, void *extra)
{
	sv_rerank_set = extra != NULL && *(bool *) extra;
}

/* The settings a scan of index uses now (svindex.h: the session, the index, the build, the defaults). */
SvScanSettings
sv_scan_settings(Relation index, const SvMetaData *meta)
{
	SvOptions  *opts = (SvOptions *) index->rd_options;
	SvScanSettings s;
	int			lists = meta->lists;

	s.probes = sv_probes > 0 ? sv_probes :
		opts != NULL && opts->probes > 0 ? opts->probes :
		meta->calib_probes > 0 ? meta->calib_probes : (lists + SV_AUTO_PROBES_DIVISOR - 1) / SV_AUTO_PROBES_DIVISOR;
	s.probes = Max(1, Min(s.probes, lists));
	s.shortlist = sv_shortlist > 0 ? sv_shortlist :
		opts != NULL && opts->shortlist > 0 ? opts->shortlist :
		meta->calib_shortlist > 0 ? meta->calib_shortlist : SV_DEFAULT_SHORTLIST;
	s.rerank = sv_rerank_set || opts == NULL || opts->rerank < 0 ? sv_rerank : opts->rerank;
	return s;
}

/* Register the reloptions and GUCs (from _PG_init). */
void
sv_index_init(void)
{
	sv_cache_init();
	sv_relopt_kind = add_reloption_kind();
	add_int_reloption(sv_relopt_kind, "lists",
					  "Number of inverted lists (1 = flat; 0 = from the row count at build: flat up to "
					  "20,000 rows, else the square root of the rows)",
					  0, 0, SV_INDEX_MAX_LISTS, AccessExclusiveLock);
	add_int_reloption(sv_relopt_kind, "bits", "Coded dimensions of a vector column (0 = all)",
					  0, 0, SV_INDEX_MAX_BITS, AccessExclusiveLock);
	add_int_reloption(sv_relopt_kind, "refine",
					  "Bits per dimension of the refine codes kept beside the 1-bit codes of a vector column "
					  "(0 = none; 2, 4 or 8)",
					  0, 0, 8, AccessExclusiveLock);
	add_bool_reloption(sv_relopt_kind, "rotate",
					   "Code a vector column's residuals after a random orthogonal rotation (default on), so "
					   "recall does not depend on how the variance is spread over the dims",
					   true, AccessExclusiveLock);
	add_real_reloption(sv_relopt_kind, "target_recall",
					   "Recall@10 the build chooses the scan's probes and shortlist for, measured on a sample of "
					   "the table's own rows (vector columns; 0 = no choice: a fifth of the lists and 100)",
					   SV_DEFAULT_TARGET_RECALL, 0.0, 1.0, AccessExclusiveLock);
	/* scan settings: ALTER INDEX ... SET needs no more than the lock of a VACUUM (scans go on) */
	add_int_reloption(sv_relopt_kind, "shortlist",
					  "Candidates in the first batch of a scan of this index, unless the session sets "
					  "shrinkvec.shortlist (0 = the build's choice, else 100)",
					  0, 0, SV_INDEX_MAX_SHORTLIST, ShareUpdateExclusiveLock);
	add_int_reloption(sv_relopt_kind, "probes",
					  "Lists a scan of this IVF index visits, unless the session sets shrinkvec.probes "
					  "(0 = the build's choice, else a fifth of the lists)",
					  0, 0, SV_INDEX_MAX_LISTS, ShareUpdateExclusiveLock);
	add_int_reloption(sv_relopt_kind, "rerank",
					  "Most rows of the first batch a scan of this index with refine codes reads, unless the "
					  "session sets shrinkvec.rerank (-1 = shrinkvec.rerank's default, 200)",
					  -1, -1, SV_INDEX_MAX_SHORTLIST, ShareUpdateExclusiveLock);

	DefineCustomIntVariable("shrinkvec.shortlist",
							"Candidates in the first batch of a shrinkvec index scan.",
							"Each batch is returned in exact order; while the executor wants more rows the "
							"scan goes on with batches twice as large. 0 = the index's own choice (made at "
							"build for its target_recall; 100 for an index without one).",
							&sv_shortlist, 0, 0, SV_INDEX_MAX_SHORTLIST,
							PGC_USERSET, GUC_EXPLAIN, NULL, NULL, NULL);
	DefineCustomIntVariable("shrinkvec.probes",
							"Lists of an IVF shrinkvec index that a scan visits.",
							"0 = the index's own choice (made at build for its target_recall; a fifth of its "
							"lists for an index without one).",
							&sv_probes, 0, 0, SV_INDEX_MAX_LISTS,
							PGC_USERSET, GUC_EXPLAIN, NULL, NULL, NULL);
	DefineCustomIntVariable("shrinkvec.max_scan_tuples",
							"Candidates one shrinkvec index scan reads at most.",
							"A scan that reaches it ends with a NOTICE (as pgvector's hnsw.max_scan_tuples).",
							&sv_max_scan_tuples, 50000, 1, INT_MAX,
							PGC_USERSET, GUC_EXPLAIN, NULL, NULL, NULL);
	DefineCustomRealVariable("shrinkvec.order_margin",
							 "How far past a row a scan reads before returning it, after the first batch.",
							 "In standard deviations of the estimates' error: larger = closer to exact order "
							 "across batches (more rows read); 0 = relaxed order: each batch goes out in exact "
							 "order as soon as it is read.",
							 &sv_order_margin, 1.5, 0.0, 10.0,
							 PGC_USERSET, GUC_EXPLAIN, NULL, NULL, NULL);
	DefineCustomIntVariable("shrinkvec.rerank",
							"Most rows of the first batch a scan of an index with refine codes reads.",
							"The 1-bit scan keeps shrinkvec.shortlist candidates; rows are read in the order of "
							"their refine codes' lower bounds while a bound can still beat the 20th nearest row "
							"read, at most shrinkvec.rerank of them (the 20 nearest go out at once in exact "
							"order). 0 = no refine stage: read every candidate.",
							&sv_rerank, 200, 0, SV_INDEX_MAX_SHORTLIST,
							PGC_USERSET, GUC_EXPLAIN, sv_rerank_check, sv_rerank_assign, NULL);
}

/* Parse and validate the index options. */
static bytea *
sv_amoptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"lists", RELOPT_TYPE_INT, offsetof(SvOptions, lists)},
		{"bits", RELOPT_TYPE_INT, offsetof(SvOptions, bits)},
		{"refine", RELOPT_TYPE_INT, offsetof(SvOptions, refine)},
		{"rotate", RELOPT_TYPE_BOOL, offsetof(SvOptions, rotate)},
		{"target_recall", RELOPT_TYPE_REAL, offsetof(SvOptions, target_recall)},
		{"shortlist", RELOPT_TYPE_INT, offsetof(SvOptions, shortlist)},
		{"probes", RELOPT_TYPE_INT, offsetof(SvOptions, probes)},
		{"rerank", RELOPT_TYPE_INT, offsetof(SvOptions, rerank)},
	};

	return (bytea *) build_reloptions(reloptions, validate, sv_relopt_kind,
									  sizeof(SvOptions), tab, lengthof(tab));
}

/* Mark a path as unusable: a scan without ORDER BY (the index cannot filter). */
static void
sv_refuse_path(IndexPath *path, Cost *startup, Cost *total, Selectivity *sel, double *corr, double *pages)
{
	*startup = get_float8_infinity();
	*total = get_float8_infinity();
	*sel = 0;
	*corr = 0;
	*pages = 0;
#if PG_VERSION_NUM >= 180000
	path->path.disabled_nodes = 2;
#endif
}

/* Does an expression tree hold a parameter whose value the planner does not know (a generic plan)? */
static bool
sv_has_param_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN)
		return true;
	return expression_tree_walker(node, sv_has_param_walker, context);
}

/* Does any restriction on the table compare with a parameter (its selectivity is a guess)? */
static bool
sv_filter_has_params(RelOptInfo *rel)
{
	ListCell   *lc;

	foreach(lc, rel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		if (sv_has_param_walker((Node *) ri->clause, NULL))
			return true;
	}
	return false;
}

/*
 * The filter selectivity a scan is costed with when the filter compares with a parameter of a generic
 * plan: PostgreSQL guesses a third of the rows for a range there, which would make a generic plan that
 * uses the index look far cheaper than the custom plans that know the value (a 1% filter then runs
 * through the index at 10x the exact plan's time).  Costed as a selective filter, the generic plan is
 * never preferred to the custom ones, and each execution is planned with its own values.
 */
#define SV_PARAM_FILTER_SEL 0.01

/*
 * Is a restriction's selectivity one of PostgreSQL's default guesses?  A function without a support
 * function in the filter (LangChain's jsonb_path_match(cmetadata, ...)) gets 0.3333333 (plancat.c's
 * function_selectivity), an operator on an expression without statistics (metadata->>'key' = ...)
 * 0.005 or 0.01, an inequality a third (selfuncs.h): numbers that say nothing of the filter.  A
 * stats-based estimate exactly equal to one of them is rare, and only makes the cost more careful.
 */
#define SV_DEFAULT_FUNCTION_SEL 0.3333333

static bool
sv_is_default_selectivity(Selectivity s)
{
	return s == SV_DEFAULT_FUNCTION_SEL || s == DEFAULT_INEQ_SEL || s == DEFAULT_EQ_SEL ||
		s == DEFAULT_MATCHING_SEL;
}

/*
 * Does any restriction on the table have a default-guess selectivity (a filter the planner cannot
 * estimate)?  Not counted: what a partial index's predicate implies (indrestrictinfo leaves it out), and a
 * restriction on the indexed column itself (a distance threshold `v <=> q < r`: its rows come first in
 * the index's order).
 */
static bool
sv_filter_has_guesses(PlannerInfo *root, IndexOptInfo *index)
{
	ListCell   *lc;

	foreach(lc, index->indrestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		Bitmapset  *attrs = NULL;

		if (ri->pseudoconstant)
			continue;
		if (index->indexkeys[0] != 0)
		{
			pull_varattnos((Node *) ri->clause, index->rel->relid, &attrs);
			if (bms_is_member(index->indexkeys[0] - FirstLowInvalidHeapAttributeNumber, attrs))
				continue;
		}
		if (sv_is_default_selectivity(clause_selectivity(root, (Node *) ri, 0, JOIN_INNER, NULL)))
			return true;
	}
	return false;
}

/*
 * The filter selectivity a scan is costed with when a restriction's selectivity is a default guess.  The
 * index reads about wanted / selectivity rows (each a heap fetch and an exact distance, then the
 * executor's fetch and filter), the exact plan every row once; when the guess is a third and the filter
 * keeps 0.1%, the index plan took 4x the exact plan's time (bench/bench_filters.py).  Costed as a filter
 * that keeps 0.1% of the rows, the index is chosen only where reading wanted / 0.1% rows still beats
 * reading all of them: a large table, where it also wins for the filters that keep more.
 */
#define SV_GUESS_FILTER_SEL 0.001

/*
 * The cost constants of a scan, in units of the planner's own costs (cpu_operator_cost, the tablespace's
 * random_page_cost), so that they scale with whatever the installation has set:
 *
 * SV_COST_KERNEL_PER_ENTRY: scoring one entry of a probed list, as a fraction of cpu_operator_cost.  The
 *   SIMD kernel scores a page's codes 32 at a time in a few nanoseconds each, about a tenth of a call of
 *   an SQL operator (cpu_operator_cost, 0.0025 by default, stands for some tens of nanoseconds).
 * SV_COST_DIMS_PER_OPERATOR: the exact distance of one vector candidate costs one cpu_operator_cost per
 *   this many dimensions (a SIMD distance handles 16 floats per step).
 * SV_COST_FETCH_PAGE_SHARE: reading one vector candidate's heap row, as a share of a random page read:
 *   the candidates are few and their pages are mostly in shared buffers, so not a full random read.
 * SV_COST_REFINE_DIMS_PER_OPERATOR: scoring one refine code costs one cpu_operator_cost per this many
 *   dimensions (a table lookup per dimension, cheaper than a float distance).
 * SV_COST_REFINE_PAGE_SHARE: reading one refine code, as a share of a random page read: the candidates'
 *   refine codes are read in page order, many to a page.
 */
#define SV_COST_KERNEL_PER_ENTRY 0.1
#define SV_COST_DIMS_PER_OPERATOR 16.0
#define SV_COST_FETCH_PAGE_SHARE 0.25
#define SV_COST_REFINE_DIMS_PER_OPERATOR 64.0
#define SV_COST_REFINE_PAGE_SHARE 0.05

/*
 * Estimate the cost of a scan.  The index serves ORDER BY distance only.  A scan goes on while the
 * executor wants rows (scan.c), so no LIMIT or filter makes an answer short: the planner is free
 * to choose it.  The startup cost is reading the probed fraction of the index sequentially plus a small
 * per-entry kernel cost; the per-row cost is genericcostestimate's.
 */
static void
sv_amcostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
				  Cost *indexStartupCost, Cost *indexTotalCost,
				  Selectivity *indexSelectivity, double *indexCorrelation, double *indexPages)
{
	GenericCosts costs;
	Relation	index;
	SvIndexCache *cache;
	int			lists,
				dims,
				elemtype,
				refine_bits,
				probes,
				shortlist,
				rerank;
	double		ratio,
				spc_seq_page_cost,
				spc_random_page_cost,
				entries,
				sel,
				wanted,
				candidates,
				batches,
				per_candidate,
				data_share = 1.0;

	if (path->indexorderbys == NIL)
	{
		sv_refuse_path(path, indexStartupCost, indexTotalCost, indexSelectivity, indexCorrelation, indexPages);
		return;
	}
	index = index_open(path->indexinfo->indexoid, NoLock);
	cache = sv_index_cache(index);
	lists = cache->meta.lists;
	dims = cache->meta.code_bits;
	elemtype = cache->meta.elemtype;
	refine_bits = cache->meta.refine_bits;
	{
		SvScanSettings settings = sv_scan_settings(index, &cache->meta);

		probes = settings.probes;
		shortlist = settings.shortlist;
		rerank = settings.rerank;
	}
	if (refine_bits > 0)
	{
		double		data_entry = cache->meta.code_bytes + sizeof(ItemPointerData) + 2 * sizeof(float);
		double		refine_entry = cache->meta.refine_bytes + sizeof(ItemPointerData) + 3 * sizeof(float);

		data_share = data_entry / (data_entry + refine_entry);
	}
	index_close(index, NoLock);

	MemSet(&costs, 0, sizeof(costs));
	genericcostestimate(root, path, loop_count, &costs);
	get_tablespace_page_costs(path->indexinfo->reltablespace, &spc_random_page_cost, &spc_seq_page_cost);

	/*
	 * one batch: read the probed lists' codes, with a small kernel cost per entry (the refine pages are
	 * not read by the scan of the codes: only the share of the index's pages that data pages take counts)
	 */
	ratio = Min(1.0, (double) probes / lists);
	entries = path->indexinfo->tuples * ratio;
	costs.indexStartupCost = costs.numIndexPages * data_share * ratio * spc_seq_page_cost
		+ entries * cpu_operator_cost * SV_COST_KERNEL_PER_ENTRY;

	/*
	 * The rows a LIMIT wants, through the table's filters (selectivity sel), cost about wanted / sel
	 * candidates (half as many again for the read-ahead past the first batch) and a rescan of the
	 * probed lists per doubling of the batch.  A vector candidate is a heap fetch and an exact distance
	 * inside the scan: on top of the executor's own fetch of the rows it keeps, which cost_index counts.
	 */
	sel = 1.0;
	if (path->indexinfo->rel->tuples > 0)
		sel = Max(1e-6, Min(1.0, path->indexinfo->rel->rows / path->indexinfo->rel->tuples));
	if (sel > SV_PARAM_FILTER_SEL && sv_filter_has_params(path->indexinfo->rel))
		sel = SV_PARAM_FILTER_SEL;
	if (sel > SV_GUESS_FILTER_SEL && sv_filter_has_guesses(root, path->indexinfo))
		sel = SV_GUESS_FILTER_SEL;
	wanted = root->limit_tuples > 0 ? root->limit_tuples : path->indexinfo->rel->rows;
	candidates = Min(path->indexinfo->tuples, Max((double) shortlist, 1.5 * wanted / sel));
	batches = 1 + (candidates > shortlist ? log2(candidates / shortlist) : 0);
	per_candidate = cpu_index_tuple_cost;
	if (elemtype != SV_ELEM_BIT)
		per_candidate += cpu_operator_cost * dims / SV_COST_DIMS_PER_OPERATOR +
			SV_COST_FETCH_PAGE_SHARE * spc_random_page_cost;
	if (refine_bits > 0 && rerank > 0 && 1.5 * wanted / sel <= SV_REFINE_DIRECT && SV_REFINE_DIRECT < shortlist)
	{
		/*
		 * Refine codes: the first batch's candidates are scored from refine pages (a read of an index page
		 * and the code's dims each), and about 2 x SV_REFINE_DIRECT of them (bound-driven, at most
		 * shrinkvec.rerank) are rows read from the table.
		 */
		double		scored = Min(path->indexinfo->tuples, (double) shortlist);

		costs.indexStartupCost = costs.indexStartupCost +
			scored * (cpu_index_tuple_cost + cpu_operator_cost * dims / SV_COST_REFINE_DIMS_PER_OPERATOR +
					  SV_COST_REFINE_PAGE_SHARE * spc_random_page_cost) +
			Min(scored, Min((double) rerank, 2.0 * SV_REFINE_DIRECT)) * per_candidate;
	}
	else
		costs.indexStartupCost = costs.indexStartupCost * batches + candidates * per_candidate;
	if (costs.indexTotalCost < costs.indexStartupCost)
		costs.indexTotalCost = costs.indexStartupCost;

	*indexStartupCost = costs.indexStartupCost;
	*indexTotalCost = costs.indexTotalCost;
	*indexSelectivity = costs.indexSelectivity;
	*indexCorrelation = 0;
	*indexPages = costs.numIndexPages;
}

/* Check an operator class: nothing beyond what CREATE OPERATOR CLASS checks. */
static bool
sv_amvalidate(Oid opclassoid)
{
	return true;
}

PG_FUNCTION_INFO_V1(shrinkvec_handler);

/* The access method's handler: its capabilities and callbacks. */
Datum
shrinkvec_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);

	am->amstrategies = 0;
	am->amsupport = 2;
	am->amoptsprocnum = 0;
	am->amcanorder = false;
	am->amcanorderbyop = true;
	am->amcanbackward = false;
	am->amcanunique = false;
	am->amcanmulticol = false;
	am->amoptionalkey = true;
	am->amsearcharray = false;
	am->amsearchnulls = false;
	am->amstorage = false;
	am->amclusterable = false;
	am->ampredlocks = false;
	am->amcanparallel = false;
	am->amcaninclude = false;
	am->amusemaintenanceworkmem = false;
	am->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	am->amkeytype = InvalidOid;
#if PG_VERSION_NUM >= 160000
	am->amsummarizing = false;
#endif
#if PG_VERSION_NUM >= 170000
	am->amcanbuildparallel = true;
	am->aminsertcleanup = NULL;
#endif
#if PG_VERSION_NUM >= 180000
	am->amcanhash = false;
	am->amconsistentequality = false;
	am->amconsistentordering = false;
	am->amgettreeheight = NULL;
	am->amtranslatestrategy = NULL;
	am->amtranslatecmptype = NULL;
#endif

	am->ambuild = sv_ambuild;
	am->ambuildempty = sv_ambuildempty;
	am->aminsert = sv_aminsert;
	am->ambulkdelete = sv_ambulkdelete;
	am->amvacuumcleanup = sv_amvacuumcleanup;
	am->amcanreturn = NULL;
	am->amcostestimate = sv_amcostestimate;
	am->amoptions = sv_amoptions;
	am->amproperty = NULL;
	am->ambuildphasename = NULL;
	am->amvalidate = sv_amvalidate;
	am->amadjustmembers = NULL;
	am->ambeginscan = sv_ambeginscan;
	am->amrescan = sv_amrescan;
	am->amgettuple = sv_amgettuple;
	am->amgetbitmap = NULL;
	am->amendscan = sv_amendscan;
	am->ammarkpos = NULL;
	am->amrestrpos = NULL;
	am->amestimateparallelscan = NULL;
	am->aminitparallelscan = NULL;
	am->amparallelrescan = NULL;

	PG_RETURN_POINTER(am);
}

PG_FUNCTION_INFO_V1(shrinkvec_bit_support);
PG_FUNCTION_INFO_V1(shrinkvec_vector_support);
PG_FUNCTION_INFO_V1(shrinkvec_halfvec_support);

/* Support function 2 of bit_hamming_ops: the indexed type is bit. */
Datum
shrinkvec_bit_support(PG_FUNCTION_ARGS)
{
	static const SvTypeInfo info = {SV_ELEM_BIT};

	PG_RETURN_POINTER(&info);
}

/* Support function 2 of the vector opclasses: the indexed type is pgvector's vector. */
Datum
shrinkvec_vector_support(PG_FUNCTION_ARGS)
{
	static const SvTypeInfo info = {SV_ELEM_VECTOR};

	PG_RETURN_POINTER(&info);
}

/* Support function 2 of the halfvec opclasses: the indexed type is pgvector's halfvec. */
Datum
shrinkvec_halfvec_support(PG_FUNCTION_ARGS)
{
	static const SvTypeInfo info = {SV_ELEM_HALFVEC};

	PG_RETURN_POINTER(&info);
}

PG_FUNCTION_INFO_V1(shrinkvec_hamming_kind);
PG_FUNCTION_INFO_V1(shrinkvec_l2_kind);
PG_FUNCTION_INFO_V1(shrinkvec_ip_kind);
PG_FUNCTION_INFO_V1(shrinkvec_cosine_kind);

/* Support function 1 of bit_hamming_ops: the distance kind Hamming. */
Datum
shrinkvec_hamming_kind(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(SV_KIND_HAMMING);
}

/* Support function 1 of the L2 opclasses: the distance kind L2. */
Datum
shrinkvec_l2_kind(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(SV_KIND_L2);
}

/* Support function 1 of the inner-product opclasses: the distance kind inner product. */
Datum
shrinkvec_ip_kind(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(SV_KIND_IP);
}

/* Support function 1 of the cosine opclasses: the distance kind cosine. */
Datum
shrinkvec_cosine_kind(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(SV_KIND_COSINE);
}
