-- Named RFM segments (src/rfm_segment.c).

CREATE FUNCTION post_purchase.rfm_segment(r_score integer, f_score integer) RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.rfm_segment(integer, integer) IS
	'the standard RFM segment (Champions ... Hibernating) of recency and frequency quintile scores 1-5';

CREATE FUNCTION post_purchase.rfm_score(value double precision, cuts double precision[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.rfm_score(double precision, double precision[]) IS
	'quintile score 1..5 of a value given the four ascending cut points between quintiles';
