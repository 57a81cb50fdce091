-- Throttled sign-in attempts, counted per limited subject (an account or an address) and
-- window instead of one event each: the first attempt of a window is recorded at once, the
-- total when the window closes. A flood of attempts is a handful of audit records.
CREATE TABLE throttle_reports (
    subject      TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    attempts     BIGINT NOT NULL,
    user_id      TEXT,
    client_id    TEXT,
    PRIMARY KEY (subject, window_start)
);
