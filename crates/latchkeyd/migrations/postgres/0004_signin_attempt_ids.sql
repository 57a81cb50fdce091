-- Each sign-in attempt is recorded before its password is checked (so parallel guesses all
-- count), and removed again if it succeeds or is refused; the id names the attempt's rows.
ALTER TABLE signin_failures ADD COLUMN attempt_id TEXT;
CREATE INDEX signin_failures_attempt ON signin_failures (attempt_id);
