DROP TABLE usage_rollup;
DROP TABLE usage_daily;
DROP TABLE usage_samples;
