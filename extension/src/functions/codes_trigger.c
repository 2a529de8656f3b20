/*
 * codes_trigger.c: shrinkvec.codes_trigger(), the one row trigger that keeps a profiled table's code
 * columns equal to the codes of its vector column (issues 26 and 32).
 *
 * Every profiled table gets
 *
 *   CREATE TRIGGER shrinkvec_codes_<hash> BEFORE INSERT OR UPDATE OF <vector>, <codes...> ON <table>
 *       FOR EACH ROW EXECUTE FUNCTION shrinkvec.codes_trigger(<arguments>)
 *
 * The arguments describe the codes completely, so the trigger reads no catalog table (a role with
 * INSERT but no SELECT gets its codes, and a one-table dump carries them in pg_trigger):
 *
 *   'v1', vector column, id column, distance, transform name ('' for none),
 *   center (a real[] literal, '' for none),
 *   then per code: column, kind (bits | prefix | int8 | multibit), length, lo, hi
 *   (lo and hi: real[] literals for int8, '' for the other kinds)
 *
 * The id column and the distance do not change the codes (the trigger only checks the distance's
 * spelling): they complete the profile, so that the tools can register a restored table's profile from
 * its trigger alone.
 *
 * For each row it computes every code from the vector (NULL codes for a NULL vector) and sets the code
 * columns to them, whatever the client wrote; a row that already holds exactly these bytes is returned as
 * it came (no new tuple: the loader sends the codes numpy computed).  The codes are those of the SQL
 * expressions of pytools/shrinkvec/kinds/ (and of the numpy reference):
 *
 *   bits      binarize(tv, length [, center])                         bit(length)
 *   prefix    the first length dims of tv, widened to float           vector(length)
 *   int8      quantize_int8(tv, lo, hi)                               int8vec(dims)
 *   multibit  binarize(tokens, length [, center])                     multibit
 *
 * where tv is shrinkvec.transform_vector(v, transform) with a transform, else v.  The extension's own
 * C functions compute the codes through direct calls (no function is looked up by name, so no
 * search_path or schema rename can redirect them); columns are found by name in the relation's tuple
 * descriptor and their types are checked by OID (pgvector's and shrinkvec's types are recognised as
 * members of their extension).  The parsed arguments are cached in the trigger's fn_extra for the
 * statement.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "kernels/kernels.h"
#include "shrinkvec.h"

/* The C functions of the extension that compute codes (functions/binarize.c, types/int8vec.c, functions/maxsim.c, functions/transform.c). */
extern Datum binarize_vector(PG_FUNCTION_ARGS);
extern Datum binarize_halfvec(PG_FUNCTION_ARGS);
extern Datum quantize_int8_vector(PG_FUNCTION_ARGS);
extern Datum quantize_int8_halfvec(PG_FUNCTION_ARGS);
extern Datum binarize_vector_array(PG_FUNCTION_ARGS);
extern Datum binarize_halfvec_array(PG_FUNCTION_ARGS);
extern Datum transform_vector(PG_FUNCTION_ARGS);
extern Datum transform_halfvec(PG_FUNCTION_ARGS);

/* The argument format this file reads (the first trigger argument). */
#define SV_TRIGGER_FORMAT "v1"
#define SV_TRIGGER_HEADER 6
#define SV_TRIGGER_PER_CODE 5

/* What the vector column holds. */
typedef enum SvVecType
{
	SV_VEC_VECTOR,
	SV_VEC_HALFVEC,
	SV_VEC_VECTOR_ARRAY,
	SV_VEC_HALFVEC_ARRAY
} SvVecType;

/* The code kinds. */
typedef enum SvCodeKind
{
	SV_CODE_BITS,
	SV_CODE_PREFIX,
	SV_CODE_INT8,
	SV_CODE_MULTIBIT
} SvCodeKind;

/* One code column, as parsed from the trigger's arguments. */
typedef struct SvTriggerCode
{
	const char *column;
	AttrNumber	attnum;
	SvCodeKind	kind;
	int32		length;
	int32		typmod;			/* the column's declared length, or -1 */
	Datum		lo;				/* int8: real[] */
	Datum		hi;
	FmgrInfo	fn;				/* binarize / quantize_int8 (unused for prefix) */
} SvTriggerCode;

/* The parsed arguments of one trigger on one relation, kept for the statement in fn_extra. */
typedef struct SvTriggerInfo
{
	Oid			tgoid;
	Oid			relid;
	AttrNumber	vec_attnum;
	SvVecType	vec_type;
	SvVecType	code_input;		/* the type the codes are computed from (vector after a transform) */
	Datum		transform;		/* text, or 0 */
	FmgrInfo	transform_fn;
	Datum		center;			/* real[], or 0 */
	int			natts;
	Datum	   *values;			/* natts replacement values, flags */
	bool	   *nulls;
	bool	   *replace;
	int			ncodes;
	SvTriggerCode codes[FLEXIBLE_ARRAY_MEMBER];
} SvTriggerInfo;

/* The name of the trigger's relation, for messages. */
static const char *
rel_name(TriggerData *td)
{
	return RelationGetRelationName(td->tg_relation);
}

/* Raise an error about a malformed trigger argument list. */
SV_NORETURN static void
bad_arguments(TriggerData *td, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid arguments of trigger \"%s\" on table \"%s\": %s",
					td->tg_trigger->tgname, rel_name(td), detail),
			 errhint("Re-create the trigger with the shrinkvec tools (shrinkvec migrate re-creates old ones).")));
}

/* Is type typid the type `name` of extension extoid (by membership, not by schema)? */
static bool
is_extension_type(Oid typid, Oid extoid, const char *name)
{
	HeapTuple	tp;
	bool		same_name;

	if (!OidIsValid(typid) || !OidIsValid(extoid))
		return false;
	tp = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tp))
		return false;
	same_name = strcmp(NameStr(((Form_pg_type) GETSTRUCT(tp))->typname), name) == 0;
	ReleaseSysCache(tp);
	return same_name && getExtensionOfObject(TypeRelationId, typid) == extoid;
}

/* The attribute number of a column of the trigger's relation; an error when it is missing. */
static AttrNumber
find_column(TriggerData *td, const char *column, Oid *typid, int32 *typmod)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), column) == 0)
		{
			/* a generated column's value is the server's to compute (a virtual one is not even stored) */
			if (att->attgenerated != '\0')
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("column \"%s\" of relation \"%s\" is a generated column", column, rel_name(td)),
						 errdetail("Trigger \"%s\" computes shrinkvec codes from or into it.",
								   td->tg_trigger->tgname)));
			*typid = att->atttypid;
			*typmod = att->atttypmod;
			return att->attnum;
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of relation \"%s\" does not exist", column, rel_name(td)),
			 errdetail("Trigger \"%s\" computes shrinkvec codes from or into it.", td->tg_trigger->tgname)));
	pg_unreachable();
}

/* Raise the error for a column whose type is not the one its role needs. */
SV_NORETURN static void
wrong_type(TriggerData *td, const char *column, Oid typid, int32 typmod, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" of relation \"%s\" has type %s, expected %s",
					column, rel_name(td), format_type_with_typemod(typid, typmod), expected),
			 errdetail("Trigger \"%s\" computes shrinkvec codes from or into it.", td->tg_trigger->tgname)));
}

/* Parse a positive length argument (1..SV_MAX_DIM). */
static int32
parse_length(TriggerData *td, const char *s, const char *column)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > SV_MAX_DIM)
		bad_arguments(td, psprintf("length \"%s\" of code column \"%s\" is not an integer between 1 and %d",
								   s, column, SV_MAX_DIM));
	return (int32) v;
}

/* Parse a real[] literal argument into a checked array in cxt (0 for ''); n gets its length. */
static Datum
parse_floats(TriggerData *td, MemoryContext cxt, const char *s, const char *what, int *n)
{
	FmgrInfo	in;
	Datum		d;
	MemoryContext old;

	*n = 0;
	if (s[0] == '\0')
		return (Datum) 0;
	old = MemoryContextSwitchTo(cxt);
	fmgr_info(F_ARRAY_IN, &in);
	d = InputFunctionCall(&in, (char *) s, FLOAT4OID, -1);
	(void) sv_float_array(DatumGetArrayTypeP(d), what, n);
	MemoryContextSwitchTo(old);
	return d;
}

/* Set up an FmgrInfo for a direct call of one of the extension's C functions (no catalog lookup). */
static void
direct_fn(FmgrInfo *f, PGFunction addr, short nargs, MemoryContext cxt)
{
	MemSet(f, 0, sizeof(FmgrInfo));
	f->fn_addr = addr;
	f->fn_oid = InvalidOid;
	f->fn_nargs = nargs;
	f->fn_strict = true;
	f->fn_retset = false;
	f->fn_mcxt = cxt;
}

/* Classify the vector column's type: pgvector's vector or halfvec, or an array of them. */
static SvVecType
vector_column_type(TriggerData *td, const char *column, Oid typid, int32 typmod, Oid vector_ext)
{
	Oid			elem = get_element_type(typid);

	if (is_extension_type(typid, vector_ext, "vector"))
		return SV_VEC_VECTOR;
	if (is_extension_type(typid, vector_ext, "halfvec"))
		return SV_VEC_HALFVEC;
	if (is_extension_type(elem, vector_ext, "vector"))
		return SV_VEC_VECTOR_ARRAY;
	if (is_extension_type(elem, vector_ext, "halfvec"))
		return SV_VEC_HALFVEC_ARRAY;
	wrong_type(td, column, typid, typmod, "vector, halfvec, vector[] or halfvec[] (pgvector)");
}

/*
 * Parse and check code i of the trigger's arguments (column, kind, length, lo, hi) against the relation
 * into info->codes[i]; scalar: the vector column is a vector or halfvec (not an array).
 */
static void
parse_code(TriggerData *td, MemoryContext cxt, SvTriggerInfo *info, int i, Oid vector_ext, Oid shrinkvec_ext,
		   bool scalar)
{
	char	  **a = td->tg_trigger->tgargs + SV_TRIGGER_HEADER + i * SV_TRIGGER_PER_CODE;
	SvTriggerCode *c = &info->codes[i];
	Oid			typid;
	int			nlo,
				nhi;
	bool		half = info->code_input == SV_VEC_HALFVEC || info->code_input == SV_VEC_HALFVEC_ARRAY;

	c->column = MemoryContextStrdup(cxt, a[0]);
	c->attnum = find_column(td, a[0], &typid, &c->typmod);
	if (c->attnum == info->vec_attnum)
		bad_arguments(td, psprintf("code column \"%s\" is the vector column", a[0]));
	for (int j = 0; j < i; j++)
		if (info->codes[j].attnum == c->attnum)
			bad_arguments(td, psprintf("code column \"%s\" is given twice", a[0]));
	c->length = parse_length(td, a[2], a[0]);
	if (strcmp(a[1], "multibit") != 0 && !scalar)
		bad_arguments(td, psprintf("code \"%s\" of kind %s needs a vector or halfvec column, not an array",
								   a[0], a[1]));
	if (strcmp(a[1], "bits") == 0)
	{
		c->kind = SV_CODE_BITS;
		if (typid != BITOID || c->typmod != c->length)
			wrong_type(td, a[0], typid, c->typmod, psprintf("bit(%d)", c->length));
		direct_fn(&c->fn, half ? binarize_halfvec : binarize_vector, 3, cxt);
	}
	else if (strcmp(a[1], "prefix") == 0)
	{
		c->kind = SV_CODE_PREFIX;
		if (!is_extension_type(typid, vector_ext, "vector") || (c->typmod != -1 && c->typmod != c->length))
			wrong_type(td, a[0], typid, c->typmod, psprintf("vector(%d)", c->length));
	}
	else if (strcmp(a[1], "int8") == 0)
	{
		c->kind = SV_CODE_INT8;
		if (!is_extension_type(typid, shrinkvec_ext, "int8vec") || (c->typmod != -1 && c->typmod != c->length))
			wrong_type(td, a[0], typid, c->typmod, psprintf("int8vec(%d)", c->length));
		c->lo = parse_floats(td, cxt, a[3], "lo", &nlo);
		c->hi = parse_floats(td, cxt, a[4], "hi", &nhi);
		if (nlo != c->length || nhi != c->length)
			bad_arguments(td, psprintf("int8 code \"%s\" needs lo and hi of %d elements, got %d and %d",
									   a[0], c->length, nlo, nhi));
		direct_fn(&c->fn, half ? quantize_int8_halfvec : quantize_int8_vector, 3, cxt);
	}
	else if (strcmp(a[1], "multibit") == 0)
	{
		c->kind = SV_CODE_MULTIBIT;
		if (scalar)
			bad_arguments(td, psprintf("multibit code \"%s\" needs a vector[] or halfvec[] column", a[0]));
		if (!is_extension_type(typid, shrinkvec_ext, "multibit"))
			wrong_type(td, a[0], typid, c->typmod, "multibit");
		direct_fn(&c->fn, half ? binarize_halfvec_array : binarize_vector_array, 3, cxt);
	}
	else
		bad_arguments(td, psprintf("unknown code kind \"%s\" of column \"%s\" (bits, prefix, int8 or multibit)",
								   a[1], a[0]));
	if (c->kind != SV_CODE_INT8 && (a[3][0] != '\0' || a[4][0] != '\0'))
		bad_arguments(td, psprintf("only int8 codes take lo and hi (code \"%s\" is %s)", a[0], a[1]));
}

/* Parse and check the trigger's arguments against its relation, into a new SvTriggerInfo in cxt. */
static SvTriggerInfo *
parse_trigger(TriggerData *td, MemoryContext cxt)
{
	Trigger    *tg = td->tg_trigger;
	char	  **args = tg->tgargs;
	int			ncodes;
	SvTriggerInfo *info;
	Oid			vector_ext = get_extension_oid("vector", true);
	Oid			shrinkvec_ext = get_extension_oid("shrinkvec", true);
	Oid			typid;
	int32		typmod;
	int			ncenter;
	bool		scalar;

	if (tg->tgnargs < 1 || strcmp(args[0], SV_TRIGGER_FORMAT) != 0)
		bad_arguments(td, psprintf("the first argument must be \"%s\", the format of the arguments",
								   SV_TRIGGER_FORMAT));
	if (tg->tgnargs < SV_TRIGGER_HEADER + SV_TRIGGER_PER_CODE ||
		(tg->tgnargs - SV_TRIGGER_HEADER) % SV_TRIGGER_PER_CODE != 0)
		bad_arguments(td, psprintf("expected 6 arguments and 5 per code, got %d", tg->tgnargs));
	ncodes = (tg->tgnargs - SV_TRIGGER_HEADER) / SV_TRIGGER_PER_CODE;

	info = MemoryContextAllocZero(cxt, offsetof(SvTriggerInfo, codes) + sizeof(SvTriggerCode) * ncodes);
	info->tgoid = tg->tgoid;
	info->relid = RelationGetRelid(td->tg_relation);
	info->ncodes = ncodes;

	/* the vector column */
	info->vec_attnum = find_column(td, args[1], &typid, &typmod);
	info->vec_type = vector_column_type(td, args[1], typid, typmod, vector_ext);
	scalar = info->vec_type == SV_VEC_VECTOR || info->vec_type == SV_VEC_HALFVEC;
	info->code_input = info->vec_type;

	if (strcmp(args[3], "cosine") != 0 && strcmp(args[3], "l2") != 0 && strcmp(args[3], "ip") != 0 &&
		strcmp(args[3], "maxsim") != 0)
		bad_arguments(td, psprintf("unknown distance \"%s\" (cosine, l2, ip or maxsim)", args[3]));

	/* the transform: codes are computed from transform_vector(v, name), a vector */
	if (args[4][0] != '\0')
	{
		if (!scalar)
			bad_arguments(td, "a multi-vector (vector[] or halfvec[]) column cannot have a transform");
		info->transform = PointerGetDatum(MemoryContextAllocZero(cxt, VARHDRSZ + strlen(args[4])));
		SET_VARSIZE(DatumGetPointer(info->transform), VARHDRSZ + strlen(args[4]));
		memcpy(VARDATA(DatumGetPointer(info->transform)), args[4], strlen(args[4]));
		direct_fn(&info->transform_fn, info->vec_type == SV_VEC_HALFVEC ? transform_halfvec : transform_vector,
				  2, cxt);
		info->code_input = SV_VEC_VECTOR;
	}
	info->center = parse_floats(td, cxt, args[5], "center", &ncenter);

	for (int i = 0; i < ncodes; i++)
		parse_code(td, cxt, info, i, vector_ext, shrinkvec_ext, scalar);

	info->natts = RelationGetDescr(td->tg_relation)->natts;
	info->values = MemoryContextAllocZero(cxt, sizeof(Datum) * info->natts);
	info->nulls = MemoryContextAllocZero(cxt, sizeof(bool) * info->natts);
	info->replace = MemoryContextAllocZero(cxt, sizeof(bool) * info->natts);
	for (int i = 0; i < ncodes; i++)
		info->replace[info->codes[i].attnum - 1] = true;
	return info;
}

/* The first length dims of a vector or halfvec as a new vector (pgvector's subvector(v, 1, length)::vector(length)). */
static Datum
prefix_code(Datum v, SvVecType type, int32 length)
{
	SvVector   *result;
	int			dim;

	if (type == SV_VEC_HALFVEC)
	{
		SvHalfVec  *h = (SvHalfVec *) PG_DETOAST_DATUM(v);

		dim = h->dim;
		if (dim < length)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("expected %d dimensions, not %d", length, dim)));
		result = sv_new_vector(length);
		for (int i = 0; i < length; i++)
			result->x[i] = sv_half_to_float(h->x[i]);
	}
	else
	{
		SvVector   *x = (SvVector *) PG_DETOAST_DATUM(v);

		dim = x->dim;
		if (dim < length)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("expected %d dimensions, not %d", length, dim)));
		result = sv_new_vector(length);
		memcpy(result->x, x->x, sizeof(float) * length);
	}
	return PointerGetDatum(result);
}

/* Compute one code from the (transformed) vector v. */
static Datum
compute_code(SvTriggerInfo *info, SvTriggerCode *c, Datum v)
{
	Datum		d;

	switch (c->kind)
	{
		case SV_CODE_BITS:
		case SV_CODE_MULTIBIT:
			if (info->center)
				return FunctionCall3(&c->fn, v, Int32GetDatum(c->length), info->center);
			return FunctionCall2(&c->fn, v, Int32GetDatum(c->length));
		case SV_CODE_PREFIX:
			return prefix_code(v, info->code_input, c->length);
		case SV_CODE_INT8:
			d = FunctionCall3(&c->fn, v, c->lo, c->hi);
			if (c->typmod != -1 && ((SvInt8Vec *) DatumGetPointer(d))->dim != c->typmod)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("expected %d dimensions, not %d", c->typmod,
								((SvInt8Vec *) DatumGetPointer(d))->dim)));
			return d;
	}
	pg_unreachable();
}

/* Whether a stored varlena value (any header, possibly toasted) has exactly the bytes of a computed one. */
static bool
same_bytes(Datum stored, Datum computed)
{
	struct varlena *a = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(stored));
	struct varlena *b = (struct varlena *) DatumGetPointer(computed);

	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)) == 0;
}

PG_FUNCTION_INFO_V1(codes_trigger);
/* SQL: shrinkvec.codes_trigger() RETURNS trigger: sets the row's code columns from its vector. */
Datum
codes_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	SvTriggerInfo *info;
	HeapTuple	tuple;
	TupleDesc	desc;
	Datum		v;
	bool		isnull;
	bool		changed = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("codes_trigger: not called by trigger manager")));
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("codes_trigger: must be fired BEFORE, FOR EACH ROW")));
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		tuple = td->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		tuple = td->tg_newtuple;
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("codes_trigger: must be fired by INSERT or UPDATE")));

	desc = RelationGetDescr(td->tg_relation);
	info = (SvTriggerInfo *) fcinfo->flinfo->fn_extra;
	if (info == NULL || info->tgoid != td->tg_trigger->tgoid || info->relid != RelationGetRelid(td->tg_relation) ||
		info->natts != desc->natts)
	{
		info = parse_trigger(td, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = info;
	}

	v = heap_getattr(tuple, info->vec_attnum, desc, &isnull);
	if (!isnull)
	{
		/* detoast once for every code (an UPDATE of the codes alone brings a TOAST pointer) */
		v = PointerGetDatum(PG_DETOAST_DATUM(v));
		if (info->transform)
			v = FunctionCall2(&info->transform_fn, v, info->transform);
	}
	for (int i = 0; i < info->ncodes; i++)
	{
		SvTriggerCode *c = &info->codes[i];
		bool		was_null;
		Datum		was = heap_getattr(tuple, c->attnum, desc, &was_null);

		info->nulls[c->attnum - 1] = isnull;
		info->values[c->attnum - 1] = isnull ? (Datum) 0 : compute_code(info, c, v);
		if (was_null != isnull || (!isnull && !same_bytes(was, info->values[c->attnum - 1])))
			changed = true;
	}
	/* the row as written when it already holds these very bytes (the loader sends numpy's codes) */
	if (!changed)
		return PointerGetDatum(tuple);
	return PointerGetDatum(heap_modify_tuple(tuple, desc, info->values, info->nulls, info->replace));
}
