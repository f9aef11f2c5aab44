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
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(render_payload);

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

/* The context's value at a dotted path; false when the path leads nowhere. */
static bool
lookup_path(Jsonb *context, const char *path, int path_len, JsonbValue *result)
{
	JsonbContainer *container = &context->root;
	int			start = 0;

	if (!JB_ROOT_IS_OBJECT(context))
		return false;
	for (;;)
	{
		int			end = start;

		while (end < path_len && path[end] != '.')
			end++;
		if (end == start ||
			getKeyJsonValueFromContainer(container, path + start, end - start, result) == NULL)
			return false;
		if (end == path_len)
			return true;
		if (result->type != jbvBinary || !JsonContainerIsObject(result->val.binary.data))
			return false;
		container = result->val.binary.data;
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
render_string(JsonbValue *string, Jsonb *context, JsonbValue *out)
{
	const char *s = string->val.string.val;
	int			len = string->val.string.len;
	const char *path;
	int			path_len;
	JsonbValue	value;
	StringInfoData text;
	bool		replaced = false;

	/* exactly one placeholder: the value, with its type */
	if (placeholder_at(s, len, &path, &path_len) == len)
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

Datum
render_payload(PG_FUNCTION_ARGS)
{
	Jsonb	   *template = PG_GETARG_JSONB_P(0);
	Jsonb	   *context = PG_GETARG_JSONB_P(1);
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
			PG_RETURN_JSONB_P(template);
		render_string(&v, context, &rendered);
		PG_RETURN_JSONB_P(JsonbValueToJsonb(&rendered));
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
	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}
