/*
 * payload.c
 *	  Filling a journey step's payload template from the customer and the
 *	  order: render_payload(template jsonb, context jsonb).
 *
 * A string in the template that is exactly one placeholder, "{{path}}",
 * becomes the context's value at that path with its JSON type (a number, an
 * object, ...; null when the path leads nowhere).  Placeholders inside a
 * longer string are replaced by the value as text ("" when missing).  A path
 * is keys joined by dots: {{customer.clv_12m}}.  Anything else, including a
 * malformed placeholder, is copied as it is.  The workers render every
 * message they write, so this is C: it walks the template once.
 *
 * The workers call render_message(), which takes the message's fields
 * (customer_id, journey, ...) as arguments instead of an object built for
 * every message: building and merging that object cost a tenth of a
 * drained step, for the two or three fields a template uses.
 *
 * render_message() knows one name more, {{recommendations}}: the
 * customer's complementary products (recommendations_json(customer_id),
 * src/affinity.sql), queried only when a template uses it, once per
 * message, so the messages that do not use it pay nothing.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "trigger_support.h"

PG_FUNCTION_INFO_V1(render_payload);
PG_FUNCTION_INFO_V1(render_message);

/*
 * render_message()'s fields, in the order of its arguments after the
 * template and the context (journeys.sql declares them so).
 */
typedef struct MessageField
{
	const char *name;
	Oid			type;
} MessageField;

static const MessageField message_fields[] = {
	{"customer", JSONBOID},
	{"customer_id", TEXTOID},
	{"journey", TEXTOID},
	{"step", TEXTOID},
	{"variant", TEXTOID},
	{"channel", TEXTOID},
	{"address", TEXTOID},
	{"enrollment_id", INT8OID},
	{"enrolled_at", TIMESTAMPTZOID},
	/* the outbox id, also the token a survey answer carries back (answers.c) */
	{"message_id", UUIDOID},
};
#define FIRST_FIELD_ARG 2

/*
 * Where placeholders find their values: an object (NULL if there is none),
 * then, for render_message(), the fields among the call's arguments.
 */
typedef struct RenderContext
{
	JsonbContainer *object;
	FunctionCallInfo fields;
	Jsonb	  **recommendations;	/* render_message(): computed on first use */
} RenderContext;

/* the field render_message() computes rather than takes */
#define RECOMMENDATIONS_FIELD "recommendations"
#define CUSTOMER_ID_ARG (FIRST_FIELD_ARG + 1)

static SPIPlanPtr recommendations_plan;

/* Length of the placeholder at s ("{{ name.path }}"), 0 if there is none; *path, *path_len: the name. */
static int
placeholder_at(const char *s, int len, const char **path, int *path_len)
{
	int			i = 2;
	int			start;

	if (len < 5 || s[0] != '{' || s[1] != '{')
		return 0;
	while (i < len && s[i] == ' ')
		i++;
	start = i;
	if (i >= len || !(isalpha((unsigned char) s[i]) || s[i] == '_'))
		return 0;
	while (i < len && (isalnum((unsigned char) s[i]) || s[i] == '_' || s[i] == '.'))
		i++;
	*path = s + start;
	*path_len = i - start;
	while (i < len && s[i] == ' ')
		i++;
	if (i + 1 >= len || s[i] != '}' || s[i + 1] != '}')
		return 0;
	return i + 2;
}

/* A jsonb datum as a value: its scalar, or its container. */
static void
jsonb_as_value(Jsonb *jsonb, JsonbValue *result)
{
	if (JB_ROOT_IS_SCALAR(jsonb) && JsonbExtractScalar(&jsonb->root, result))
		return;
	result->type = jbvBinary;
	result->val.binary.data = &jsonb->root;
	result->val.binary.len = VARSIZE(jsonb) - VARHDRSZ;
}

/*
 * The customer's recommendations as a JSON array, once per message: run as
 * the caller (the workers), through a plan kept for the backend's life.
 */
static Jsonb *
customer_recommendations(FunctionCallInfo fcinfo)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {PG_GETARG_DATUM(CUSTOMER_ID_ARG)};
	Datum		value;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(kept_plan(&recommendations_plan,
								   "SELECT post_purchase.recommendations_json($1)", 1, types),
						 values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not compute the customer's recommendations");
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		elog(ERROR, "recommendations_json returned NULL");
	/* copied out of SPI's memory, which SPI_finish frees */
	value = SPI_datumTransfer(value, false, -1);
	SPI_finish();
	return DatumGetJsonbP(value);
}

/* render_message()'s field of this name as a value, as to_jsonb() makes it; false if there is none. */
static bool
lookup_field(const RenderContext *context, const char *name, int name_len, JsonbValue *result)
{
	FunctionCallInfo fcinfo = context->fields;

	if (name_len == strlen(RECOMMENDATIONS_FIELD) && memcmp(name, RECOMMENDATIONS_FIELD, name_len) == 0)
	{
		/* no customer, no recommendations: the path leads nowhere */
		if (PG_ARGISNULL(CUSTOMER_ID_ARG))
			return false;
		if (*context->recommendations == NULL)
			*context->recommendations = customer_recommendations(fcinfo);
		jsonb_as_value(*context->recommendations, result);
		return true;
	}
	for (int i = 0; i < lengthof(message_fields); i++)
	{
		int			arg = FIRST_FIELD_ARG + i;
		Datum		value;

		if (strlen(message_fields[i].name) != name_len ||
			memcmp(message_fields[i].name, name, name_len) != 0)
			continue;
		if (PG_ARGISNULL(arg))
		{
			result->type = jbvNull;
			return true;
		}
		value = PG_GETARG_DATUM(arg);
		switch (message_fields[i].type)
		{
			case JSONBOID:
				jsonb_as_value(DatumGetJsonbP(value), result);
				break;
			case TEXTOID:
				{
					text	   *t = DatumGetTextPP(value);

					result->type = jbvString;
					result->val.string.val = VARDATA_ANY(t);
					result->val.string.len = VARSIZE_ANY_EXHDR(t);
				}
				break;
			case INT8OID:
				result->type = jbvNumeric;
				result->val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, value));
				break;
			case TIMESTAMPTZOID:
				result->type = jbvString;
				result->val.string.val = JsonEncodeDateTime(NULL, value, TIMESTAMPTZOID, NULL);
				result->val.string.len = strlen(result->val.string.val);
				break;
			case UUIDOID:
				result->type = jbvString;
				result->val.string.val = DatumGetCString(DirectFunctionCall1(uuid_out, value));
				result->val.string.len = strlen(result->val.string.val);
				break;
			default:
				elog(ERROR, "unexpected message field type %u", message_fields[i].type);
		}
		return true;
	}
	return false;
}

/*
 * The value at a dotted path; false when the path leads nowhere.  Its first
 * key is looked up in the object, then among the fields.
 */
static bool
lookup_path(const RenderContext *context, const char *path, int path_len, JsonbValue *result)
{
	int			start = 0;

	for (;;)
	{
		int			end = start;

		while (end < path_len && path[end] != '.')
			end++;
		if (end == start)
			return false;
		if (start == 0)
		{
			if ((context->object == NULL ||
				 getKeyJsonValueFromContainer(context->object, path, end, result) == NULL) &&
				(context->fields == NULL || !lookup_field(context, path, end, result)))
				return false;
		}
		else if (result->type != jbvBinary || !JsonContainerIsObject(result->val.binary.data) ||
				 getKeyJsonValueFromContainer(result->val.binary.data, path + start, end - start,
											  result) == NULL)
			return false;
		if (end == path_len)
			return true;
		start = end + 1;
	}
}

/* A value as text inside a longer string: strings unquoted, null empty. */
static void
append_value_text(StringInfo out, JsonbValue *value)
{
	switch (value->type)
	{
		case jbvNull:
			break;
		case jbvString:
			appendBinaryStringInfo(out, value->val.string.val, value->val.string.len);
			break;
		case jbvNumeric:
			appendStringInfoString(out, DatumGetCString(DirectFunctionCall1(numeric_out,
																			  NumericGetDatum(value->val.numeric))));
			break;
		case jbvBool:
			appendStringInfoString(out, value->val.boolean ? "true" : "false");
			break;
		case jbvBinary:
			(void) JsonbToCString(out, value->val.binary.data, value->val.binary.len);
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) value->type);
	}
}

/* A template string with its placeholders filled, into *out. */
static void
render_string(JsonbValue *string, const RenderContext *context, JsonbValue *out)
{
	const char *s = string->val.string.val;
	int			len = string->val.string.len;
	const char *path;
	int			path_len;
	JsonbValue	value;
	StringInfoData text;
	bool		replaced = false;

	/* exactly one placeholder: the value, with its type (an empty string has none) */
	if (len > 0 && placeholder_at(s, len, &path, &path_len) == len)
	{
		if (!lookup_path(context, path, path_len, out))
			out->type = jbvNull;
		return;
	}

	initStringInfo(&text);
	for (int i = 0; i < len;)
	{
		int			n = s[i] == '{' ? placeholder_at(s + i, len - i, &path, &path_len) : 0;

		if (n == 0)
		{
			appendStringInfoChar(&text, s[i++]);
			continue;
		}
		if (lookup_path(context, path, path_len, &value))
			append_value_text(&text, &value);
		replaced = true;
		i += n;
	}
	if (!replaced)
	{
		*out = *string;
		return;
	}
	out->type = jbvString;
	out->val.string.val = text.data;
	out->val.string.len = text.len;
}

/* The template with its placeholders filled from the context. */
static Jsonb *
render(Jsonb *template, const RenderContext *context)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbIteratorToken token;
	JsonbValue	v;
	JsonbValue	rendered;
	JsonbValue *result = NULL;

	/* a bare string template becomes whatever it renders to */
	if (JB_ROOT_IS_SCALAR(template))
	{
		if (!JsonbExtractScalar(&template->root, &v) || v.type != jbvString)
			return template;
		render_string(&v, context, &rendered);
		return JsonbValueToJsonb(&rendered);
	}

	it = JsonbIteratorInit(&template->root);
	while ((token = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (token)
		{
			case WJB_VALUE:
			case WJB_ELEM:
				if (v.type == jbvString)
				{
					render_string(&v, context, &rendered);
					result = pushJsonbValue(&state, token, &rendered);
				}
				else
					result = pushJsonbValue(&state, token, &v);
				break;
			case WJB_KEY:
			case WJB_BEGIN_ARRAY:
				result = pushJsonbValue(&state, token, &v);
				break;
			default:
				result = pushJsonbValue(&state, token, NULL);
				break;
		}
	}
	return JsonbValueToJsonb(result);
}

/* The context's object, if it is one: other JSON offers no keys to look up. */
static JsonbContainer *
object_of(Jsonb *context)
{
	return JB_ROOT_IS_OBJECT(context) ? &context->root : NULL;
}

Datum
render_payload(PG_FUNCTION_ARGS)
{
	RenderContext context = {object_of(PG_GETARG_JSONB_P(1)), NULL, NULL};

	PG_RETURN_JSONB_P(render(PG_GETARG_JSONB_P(0), &context));
}

/*
 * render_message(template, context, customer, customer_id, journey, step,
 * variant, channel, address, enrollment_id, enrolled_at, message_id): the same as
 * render_payload(template, jsonb_build_object('customer', customer,
 * 'customer_id', customer_id, ...) || context) for an object context (the
 * context's keys win), without building that object, and with
 * {{recommendations}} besides (see the top of the file).  Not strict: any
 * field may be NULL; a NULL template renders to NULL.
 */
Datum
render_message(PG_FUNCTION_ARGS)
{
	Jsonb	   *recommendations = NULL;
	RenderContext context = {NULL, fcinfo, &recommendations};

	if (PG_NARGS() != FIRST_FIELD_ARG + lengthof(message_fields))
		elog(ERROR, "render_message() takes %d arguments", FIRST_FIELD_ARG + (int) lengthof(message_fields));
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (!PG_ARGISNULL(1))
		context.object = object_of(PG_GETARG_JSONB_P(1));
	PG_RETURN_JSONB_P(render(PG_GETARG_JSONB_P(0), &context));
}
