/*
 * scores.h
 *	  The scores stored with the customer's state (scores.c), and the SQL
 *	  that stores them, which the workers' decisions use too (decisions.c).
 */
#ifndef POST_PURCHASE_SCORES_H
#define POST_PURCHASE_SCORES_H

/*
 * What the scores are computed with, as relation x of an UPDATE's FROM:
 * the metrics context, today in the shop's zone and the context's version.
 * OFFSET 0: read once per statement.
 */
#define SCORING_CONTEXT \
	"(SELECT post_purchase.today_in_zone(c.pinned_today, c.time_zone) AS today, c.* " \
	"FROM post_purchase.metrics_context c OFFSET 0) x"

/*
 * The assignment of an UPDATE of customer_state s (FROM SCORING_CONTEXT)
 * that stores the row's scores: metrics_of() of the row as it stands, for
 * today, under the context's version.
 */
#define STORE_SCORES_SET \
	"(scored_on, scored_context, average_order_value, monetary_value, p_alive, " \
	"expected_purchases_90d, clv_12m, r_score, f_score, m_score, rfm_segment, lifecycle_stage) = " \
	"(SELECT x.today, x.version, m.average_order_value, m.monetary_value, m.p_alive, " \
	"m.expected_purchases_90d, m.clv_12m, m.r_score, m.f_score, m.m_score, m.rfm_segment, " \
	"m.lifecycle_stage FROM post_purchase.metrics_of(s, x.today, x.lapsed_after_days, " \
	"x.at_risk_after_days, x.clv_monthly_discount, x.model, x.cuts) m)"

#endif							/* POST_PURCHASE_SCORES_H */
