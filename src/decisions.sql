-- Decisions (src/decisions.c): the order trigger marks a changed customer
-- in customer_state, and the workers decide for the marked customers
-- (segment entries and exits, order journeys) in batches after the order
-- commits, or the trigger decides at once (post_purchase.decide_in).

-- Decide for up to batch marked customers, oldest mark first; returns how
-- many.  The workers call it; a session may, to decide without them.
CREATE FUNCTION post_purchase.process_changes(batch integer DEFAULT 100) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION post_purchase.process_changes(integer) IS
	'decide segment changes and journey enrollments for up to batch changed customers; returns how many';
REVOKE ALL ON FUNCTION post_purchase.process_changes(integer) FROM PUBLIC;

-- What waits for a decision: the changed customers and the oldest change.
-- Between an order's commit and its decision, the customer's state is
-- current and its memberships and enrollments are not yet.
CREATE VIEW post_purchase.decision_backlog AS
SELECT pg_catalog.count(*) AS customers,
	   pg_catalog.min(s.changed_at) AS oldest_change,
	   pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(s.changed_at) AS lag
FROM post_purchase.customer_state s
WHERE s.changed_at IS NOT NULL;
COMMENT ON VIEW post_purchase.decision_backlog IS
	'changed customers waiting for a worker''s decision, and the age of the oldest change';
