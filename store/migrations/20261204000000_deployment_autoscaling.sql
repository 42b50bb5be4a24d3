-- Autoscaling between replicas_min and replicas_max: how many replicas a deployment runs now,
-- set by the autoscaler from its replicas' load (NULL, as for rows made before this: replicas_min).
ALTER TABLE deployments ADD COLUMN replicas_target BIGINT;
