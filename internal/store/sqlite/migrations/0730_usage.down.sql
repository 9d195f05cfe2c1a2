DROP TABLE usage_rollup;
DROP TABLE usage_capsule_days;
DROP TABLE usage_hourly;
DROP TABLE usage_daily;
DROP TABLE usage_samples;
