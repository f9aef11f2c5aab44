-- Named RFM segments (src/rfm_segment.c).

CREATE FUNCTION post_purchase.rfm_segment(r_score integer, f_score integer) RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION post_purchase.rfm_segment(integer, integer) IS
	'the standard RFM segment (Champions ... Hibernating) of recency and frequency quintile scores 1-5';
