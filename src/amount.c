/*
 * amount.c
 *	  Exact sums of numeric amounts; see amount.h.
 *
 * The fast path reads numeric's on-disk format, which PostgreSQL keeps stable
 * across major versions because pg_upgrade carries numeric columns over
 * unchanged: a 16-bit header (sign, display scale and, in the short form, the
 * weight) followed by base-10000 digits, trailing zero digits omitted.
 */
#include "postgres.h"

#include "common/int.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "amount.h"

/* numeric on-disk header bits */
#define NUM_FORM_MASK		0xC000
#define NUM_FORM_NEG		0x4000
#define NUM_FORM_SHORT		0x8000
#define NUM_FORM_SPECIAL	0xC000
#define NUM_SHORT_NEG		0x2000
#define NUM_SHORT_DSCALE	0x1F80
#define NUM_SHORT_DSCALE_SHIFT 7
#define NUM_SHORT_WEIGHT_NEG 0x0040
#define NUM_SHORT_WEIGHT	0x003F
#define NUM_LONG_DSCALE		0x3FFF
#define NUM_BASE			10000

/* fixed-point amounts are held in units of NUM_BASE^-FIXED_FRAC_DIGITS */
#define FIXED_FRAC_DIGITS	2
#define FIXED_FRAC_DECIMALS (FIXED_FRAC_DIGITS * 4)
/* at most this many base-10000 digits left of the point: 10^36 < 2^127 / 100 */
#define FIXED_INT_DIGITS	7

void
amount_fixed_zero(AmountFixed *fixed)
{
#ifdef HAVE_INT128
	*fixed = 0;
#else
	memset(fixed, 0, sizeof(AmountFixed));
#endif
}

void
amount_sum_init(AmountSum *sum)
{
	amount_fixed_zero(&sum->fixed);
	sum->overflow = NULL;
	sum->dscale = 0;
}

static void
reject_special(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("amount must be a finite number"),
			 errdetail("NaN and infinite amounts cannot be summed.")));
}

/* Add a numeric to the exact slow-path sum, in the aggregate's context. */
static void
overflow_add(AmountSum *sum, MemoryContext cxt, Numeric value)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Numeric		prev = sum->overflow;

	sum->overflow = prev ? numeric_add_opt_error(prev, value, NULL) : DatumGetNumericCopy(NumericGetDatum(value));
	MemoryContextSwitchTo(old);
	if (prev)
		pfree(prev);
}

#ifdef HAVE_INT128
/*
 * Decode a numeric into units of 1e-8 if it fits; false if it has finer
 * digits or is too large.  The value must not be NaN or infinite.
 */
static bool
numeric_to_fixed(uint16 header, const char *data, int datalen, int128 *out)
{
	const int16 *digits;
	int			ndigits;
	int			weight;
	bool		negative;
	int128		value = 0;

	if ((header & NUM_FORM_MASK) == NUM_FORM_SHORT)
	{
		negative = (header & NUM_SHORT_NEG) != 0;
		weight = (header & NUM_SHORT_WEIGHT);
		if (header & NUM_SHORT_WEIGHT_NEG)
			weight |= ~NUM_SHORT_WEIGHT;
		digits = (const int16 *) (data + sizeof(uint16));
		ndigits = (datalen - (int) sizeof(uint16)) / (int) sizeof(int16);
	}
	else
	{
		int16		w;

		negative = (header & NUM_FORM_MASK) == NUM_FORM_NEG;
		memcpy(&w, data + sizeof(uint16), sizeof(int16));
		weight = w;
		digits = (const int16 *) (data + 2 * sizeof(uint16));
		ndigits = (datalen - 2 * (int) sizeof(uint16)) / (int) sizeof(int16);
	}

	if (ndigits == 0)
	{
		*out = 0;
		return true;
	}
	/* digit i is worth NUM_BASE^(weight - i) */
	if (weight >= FIXED_INT_DIGITS || weight - (ndigits - 1) < -FIXED_FRAC_DIGITS)
		return false;
	for (int p = weight; p >= -FIXED_FRAC_DIGITS; p--)
	{
		int			i = weight - p;
		int16		digit;

		if (i < ndigits)
			memcpy(&digit, digits + i, sizeof(int16));
		else
			digit = 0;
		value = value * NUM_BASE + digit;
	}
	/* weight may be below -FIXED_FRAC_DIGITS only for zero, handled above */
	*out = negative ? -value : value;
	return true;
}
#endif

/*
 * Add one amount to the fixed part and count its display scale; false when
 * it does not fit there.  The datum may be a packed (short-header) numeric
 * straight from a tuple: reading it in place avoids the copy
 * PG_GETARG_NUMERIC makes.
 */
bool
amount_fixed_add(AmountFixed *sum, int32 *sum_dscale, Datum amount)
{
	struct varlena *packed = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(amount));
	const char *data = VARDATA_ANY(packed);
	int			datalen = VARSIZE_ANY_EXHDR(packed);
	uint16		header;
	int			dscale;

	if (datalen < (int) sizeof(uint16))
		elog(ERROR, "invalid numeric amount");
	memcpy(&header, data, sizeof(uint16));
	if ((header & NUM_FORM_MASK) == NUM_FORM_SPECIAL)
		reject_special();
	if ((header & NUM_FORM_MASK) == NUM_FORM_SHORT)
		dscale = (header & NUM_SHORT_DSCALE) >> NUM_SHORT_DSCALE_SHIFT;
	else
		dscale = header & NUM_LONG_DSCALE;
	*sum_dscale = Max(*sum_dscale, dscale);

#ifdef HAVE_INT128
	{
		int128		fixed;
		int128		total;

		if (numeric_to_fixed(header, data, datalen, &fixed) &&
			!__builtin_add_overflow(*sum, fixed, &total))
		{
			*sum = total;
			return true;
		}
	}
#endif
	return false;
}

/* Add one amount. */
void
amount_sum_add(AmountSum *sum, MemoryContext cxt, Datum amount)
{
	if (!amount_fixed_add(&sum->fixed, &sum->dscale, amount))
		overflow_add(sum, cxt, DatumGetNumeric(amount));
}

#ifdef HAVE_INT128
/* The fixed-point part as a numeric with FIXED_FRAC_DECIMALS decimals. */
static Numeric
fixed_to_numeric(int128 fixed)
{
	char		buf[64];
	char	   *p = buf + sizeof(buf) - 1;
	bool		negative = fixed < 0;
	uint128		magnitude = negative ? -(uint128) fixed : (uint128) fixed;
	int			written = 0;

	*p = '\0';
	while (magnitude > 0 || written <= FIXED_FRAC_DECIMALS)
	{
		if (written == FIXED_FRAC_DECIMALS)
			*--p = '.';
		*--p = '0' + (int) (magnitude % 10);
		magnitude /= 10;
		written++;
	}
	if (negative)
		*--p = '-';
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(p),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}
#endif

/* The fixed part as a numeric. */
Numeric
amount_fixed_numeric(const AmountFixed *fixed)
{
#ifdef HAVE_INT128
	return fixed_to_numeric(*fixed);
#else
	return int64_to_numeric(0);
#endif
}

/* Add another fixed part; false, leaving "fixed" alone, when the sum overflows. */
bool
amount_fixed_add_fixed(AmountFixed *fixed, const AmountFixed *other)
{
#ifdef HAVE_INT128
	int128		total;

	if (__builtin_add_overflow(*fixed, *other, &total))
		return false;
	*fixed = total;
#endif
	return true;
}

/* The exact sum, at the largest display scale of the amounts added. */
Numeric
amount_sum_value(const AmountSum *sum)
{
	Numeric		result;

	result = amount_fixed_numeric(&sum->fixed);
	if (sum->overflow)
		result = numeric_add_opt_error(result, sum->overflow, NULL);
	return DatumGetNumeric(DirectFunctionCall2(numeric_round, NumericGetDatum(result),
											   Int32GetDatum(sum->dscale)));
}

void
amount_sum_add_sum(AmountSum *sum, MemoryContext cxt, const AmountSum *other)
{
	if (!amount_fixed_add_fixed(&sum->fixed, &other->fixed))
		overflow_add(sum, cxt, amount_fixed_numeric(&other->fixed));
	if (other->overflow)
		overflow_add(sum, cxt, other->overflow);
	sum->dscale = Max(sum->dscale, other->dscale);
}

/* States cross processes as text: exact, and only done once per worker. */
void
amount_sum_serialize(StringInfo buf, const AmountSum *sum)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out,
														   NumericGetDatum(amount_sum_value(sum))));

	int			len = strlen(text);

	pq_sendint32(buf, sum->dscale);
	pq_sendint32(buf, len);
	pq_sendbytes(buf, text, len);
}

void
amount_sum_deserialize(StringInfo buf, AmountSum *sum, MemoryContext cxt)
{
	int32		dscale = pq_getmsgint(buf, 4);
	int32		len = pq_getmsgint(buf, 4);
	char	   *text;
	Numeric		value;

	if (len < 0 || len > buf->len - buf->cursor)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid amount length %d in aggregate state", len)));
	text = pnstrdup(pq_getmsgbytes(buf, len), len);
	/*
	 * amount_sum_serialize writes numeric_out's text.  numeric_in judges
	 * the rest, and quotes what it refuses in its error message: bytes that
	 * are not printable ASCII (of no valid encoding, perhaps) are refused
	 * here instead.
	 */
	for (int32 i = 0; i < len; i++)
	{
		if (text[i] < 0x20 || text[i] > 0x7E)
			len = -1;
	}
	if (len <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid amount in aggregate state")));

	value = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
												ObjectIdGetDatum(InvalidOid),
												Int32GetDatum(-1)));
	amount_sum_init(sum);
	amount_sum_add(sum, cxt, NumericGetDatum(value));
	sum->dscale = Max(dscale, 0);
}
