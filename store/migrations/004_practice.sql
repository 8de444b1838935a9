-- pagerd schema, version 4: incident practice: the mitigated state, roles, frontline
-- details, change events per component, remediation actions.

ALTER TABLE incidents ADD COLUMN mitigated_at REAL;
ALTER TABLE incidents ADD COLUMN mitigated_by TEXT;
ALTER TABLE incidents ADD COLUMN lead TEXT;
ALTER TABLE incidents ADD COLUMN comms TEXT;
ALTER TABLE incidents ADD COLUMN details TEXT NOT NULL DEFAULT '{}';

CREATE TABLE change_events (
    id        INTEGER PRIMARY KEY,
    component TEXT,
    summary   TEXT NOT NULL,
    source    TEXT NOT NULL,
    at        REAL NOT NULL,
    data      TEXT NOT NULL
);
CREATE INDEX change_events_component ON change_events (component, at);

CREATE TABLE actions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL,
    owner       TEXT NOT NULL,
    due         REAL NOT NULL,
    text        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'open',
    created_by  TEXT NOT NULL,
    created_at  REAL NOT NULL,
    closed_by   TEXT,
    closed_at   REAL
);
CREATE INDEX actions_open ON actions (state, due);
