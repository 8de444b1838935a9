-- pagerd schema, version 1: alerts, incidents and their alerts, timelines, timers.

CREATE TABLE alerts (
    fingerprint   TEXT PRIMARY KEY,
    integration   TEXT NOT NULL,
    status        TEXT NOT NULL,
    labels        TEXT NOT NULL,
    annotations   TEXT NOT NULL,
    starts_at     TEXT,
    ends_at       TEXT,
    generator_url TEXT NOT NULL DEFAULT '',
    stateless     INTEGER NOT NULL DEFAULT 0,
    suppressed    INTEGER NOT NULL DEFAULT 0,
    source        TEXT NOT NULL DEFAULT '{}',
    received_at   REAL NOT NULL,
    updated_at    REAL NOT NULL
);

CREATE TABLE incidents (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    key               TEXT NOT NULL,
    route_id          TEXT NOT NULL,
    receiver          TEXT NOT NULL,
    group_labels      TEXT NOT NULL,
    state             TEXT NOT NULL,
    severity          TEXT NOT NULL,
    severity_rank     INTEGER NOT NULL,
    severity_pinned   INTEGER NOT NULL DEFAULT 0,
    owner             TEXT,
    escalation_policy TEXT,
    title             TEXT NOT NULL DEFAULT '',
    opened_at         REAL NOT NULL,
    acknowledged_at   REAL,
    acknowledged_by   TEXT,
    resolved_at       REAL,
    resolved_by       TEXT,
    updated_at        REAL NOT NULL
);
-- One open incident per key; a resolved one leaves room for the next.
CREATE UNIQUE INDEX incidents_open_key ON incidents (key) WHERE state != 'resolved';
CREATE INDEX incidents_state ON incidents (state);

CREATE TABLE incident_alerts (
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    fingerprint TEXT NOT NULL,
    status      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    PRIMARY KEY (incident_id, fingerprint)
) WITHOUT ROWID;
CREATE INDEX incident_alerts_fingerprint ON incident_alerts (fingerprint);

CREATE TABLE timeline (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL,
    at          REAL NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX timeline_incident ON timeline (incident_id, id);

-- Durable timers: a due notification (and, later, escalation steps). A claim is a lease:
-- `claimed_until` in the future means a send is in flight.
CREATE TABLE timers (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    incident_id   INTEGER NOT NULL,
    target        TEXT NOT NULL,
    due_at        REAL NOT NULL,
    claimed_until REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    generation    INTEGER NOT NULL DEFAULT 0,
    dirty         INTEGER NOT NULL DEFAULT 0,
    last_sent_at  REAL,
    last_digest   TEXT,
    created_at    REAL NOT NULL
);
CREATE UNIQUE INDEX timers_one ON timers (kind, incident_id, target);
CREATE INDEX timers_due ON timers (due_at);
