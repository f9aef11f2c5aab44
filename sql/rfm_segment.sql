-- rfm_segment: the standard R x F grid, rows R = 5..1, columns F = 1..5.
SELECT r AS r_score,
	   post_purchase.rfm_segment(r, 1) AS f1,
	   post_purchase.rfm_segment(r, 2) AS f2,
	   post_purchase.rfm_segment(r, 3) AS f3,
	   post_purchase.rfm_segment(r, 4) AS f4,
	   post_purchase.rfm_segment(r, 5) AS f5
FROM generate_series(5, 1, -1) r;

-- exactly the ten named segments, with the number of grid cells each covers
SELECT post_purchase.rfm_segment(r, f) AS segment, count(*) AS cells
FROM generate_series(1, 5) r, generate_series(1, 5) f
GROUP BY 1 ORDER BY 1;

-- STRICT: an unknown score gives an unknown segment
SELECT post_purchase.rfm_segment(NULL, 3) IS NULL AS is_null;
