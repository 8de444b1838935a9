-- pagerd schema, version 6: handoff notices sent, one per shift.

CREATE TABLE handoffs (
    schedule TEXT NOT NULL,
    user     TEXT NOT NULL,
    start    REAL NOT NULL,
    at       REAL NOT NULL,
    PRIMARY KEY (schedule, user, start)
) WITHOUT ROWID;
