-- The database's own ceiling for a credit balance: one conditional UPDATE of
-- one hot row per transaction, as a reservation or a release does at its core.
\set delta random(0, 1) * 2 - 1
UPDATE bench_pool SET reserved = reserved + :delta
  WHERE id = 1 AND reserved + :delta BETWEEN 0 AND capacity;
