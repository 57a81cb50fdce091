-- A family's chain is a list linked by row id, walked from the session's newest token, instead
-- of an index on (session_id, generation): that index put a random B-tree page into every
-- rotation's commit (docs/BENCHMARKS.md).
ALTER TABLE refresh_tokens ADD COLUMN parent_id BIGINT;
ALTER TABLE sessions ADD COLUMN head_token_id BIGINT;
UPDATE refresh_tokens SET parent_id = (
    SELECT p.id FROM refresh_tokens p
    WHERE p.session_id = refresh_tokens.session_id AND p.generation = refresh_tokens.parent_generation
) WHERE parent_generation IS NOT NULL;
UPDATE sessions SET head_token_id = (
    SELECT t.id FROM refresh_tokens t WHERE t.session_id = sessions.id ORDER BY t.generation DESC LIMIT 1
);
DROP INDEX refresh_tokens_chain;
