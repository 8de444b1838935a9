-- pagerd schema, version 9: where the daemon has read each intake journal up to.
-- An intake process journals what it accepts; the daemon ingests a run of entries and moves
-- the journal's cursor in the same transaction, so no entry is ingested twice or skipped.

CREATE TABLE intake_cursors (
    source TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
