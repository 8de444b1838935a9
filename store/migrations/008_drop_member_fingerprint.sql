-- pagerd schema, version 8: memberships are no longer indexed by fingerprint alone.
-- Every alert joining an incident paid for a second, randomly placed index entry (about 40 %
-- of the SQLite work of ingesting it); the lookups that used it go through the open
-- incident by key, or scan the open incidents (PagerDuty's acknowledge by dedup_key).

DROP INDEX incident_alerts_fingerprint;
