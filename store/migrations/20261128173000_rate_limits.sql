-- Rate-limit overrides: per project (all its keys together) and a concurrency limit per key
-- (api_keys already has limit_rpm and limit_tpm). NULL falls back to the next level:
-- key -> project -> the tenant's plan.
ALTER TABLE projects ADD COLUMN limit_rpm BIGINT;
ALTER TABLE projects ADD COLUMN limit_tpm BIGINT;
ALTER TABLE projects ADD COLUMN limit_concurrency BIGINT;
ALTER TABLE api_keys ADD COLUMN limit_concurrency BIGINT;
