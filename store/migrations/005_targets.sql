-- pagerd schema, version 5: response-target breaches (each recorded once) and the status
-- page incident an incident was published as.

CREATE TABLE breaches (
    incident_id INTEGER NOT NULL,
    target      TEXT NOT NULL,
    stage       TEXT NOT NULL,
    at          REAL NOT NULL,
    PRIMARY KEY (incident_id, target, stage)
) WITHOUT ROWID;

ALTER TABLE incidents ADD COLUMN status_page_id TEXT;
