/*
 * message_id.c
 *	  Time-ordered message ids for the outbox: uuid_v7().
 *
 * A UUID of version 7 (RFC 9562): the first 48 bits are the Unix time in
 * milliseconds, the next 12 the fraction of the millisecond (the RFC's
 * "increased clock precision" method), and the remaining 62 are random.
 * The outbox's primary key then grows at its right edge, where a random
 * version 4 id lands on a random leaf page of an index that outgrows memory:
 * firing a million steps touched a million scattered pages.  Ids stay
 * unique without coordination (62 random bits per microsecond, the clock's
 * resolution), and a consumer that sorts by id sees roughly the order in
 * which messages were fired; ids of one microsecond, or made after the clock
 * stepped back, are not ordered (RFC 9562 allows it).
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(post_purchase_uuid_v7);

Datum
post_purchase_uuid_v7(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *uuid = palloc(sizeof(pg_uuid_t));
	/* PostgreSQL counts microseconds from 2000-01-01, Unix time from 1970 */
	uint64		unix_us = (uint64) (GetCurrentTimestamp() +
									(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
	uint64		unix_ms = unix_us / 1000;
	uint32		sub_ms = (uint32) ((unix_us % 1000) * 4096 / 1000);
	int			i;

	if (!pg_strong_random(&uuid->data[8], UUID_LEN - 8))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	for (i = 0; i < 6; i++)
		uuid->data[i] = (uint8) (unix_ms >> (40 - 8 * i));
	uuid->data[6] = 0x70 | (uint8) (sub_ms >> 8);	/* version 7 */
	uuid->data[7] = (uint8) sub_ms;
	uuid->data[8] = (uuid->data[8] & 0x3F) | 0x80;	/* variant 10 */
	PG_RETURN_UUID_P(uuid);
}
