-- pagerd schema, version 2: timer payloads (escalation position, page details) and
-- runtime schedule overrides.

ALTER TABLE timers ADD COLUMN payload TEXT NOT NULL DEFAULT '{}';

CREATE TABLE overrides (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    removed_by TEXT,
    removed_at REAL
);
CREATE INDEX overrides_schedule ON overrides (schedule) WHERE removed_at IS NULL;

-- Every change of a person's, for the audit: who did what, when, why.
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY,
    at     REAL NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    data   TEXT NOT NULL
);
