-- pagerd schema, version 3: what paging needs to remember: reply codes per phone, the
-- pages sent (for bundling, bare replies and delivery callbacks), SMS opt-outs, spent
-- action links and help replies (to cap them).

CREATE TABLE reply_codes (
    phone       TEXT NOT NULL,
    code        INTEGER NOT NULL,
    incident_id INTEGER NOT NULL,
    assigned_at REAL NOT NULL
);
CREATE INDEX reply_codes_phone ON reply_codes (phone, assigned_at);

CREATE TABLE page_log (
    id          INTEGER PRIMARY KEY,
    provider_id TEXT,
    incidents   TEXT NOT NULL,
    user        TEXT NOT NULL,
    method      TEXT NOT NULL,
    address     TEXT NOT NULL,
    step        TEXT NOT NULL,
    sent_at     REAL NOT NULL,
    status      TEXT NOT NULL DEFAULT 'sent'
);
CREATE UNIQUE INDEX page_log_provider ON page_log (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX page_log_recent ON page_log (user, method, sent_at);
CREATE INDEX page_log_address ON page_log (address, sent_at);

CREATE TABLE opt_outs (
    phone TEXT PRIMARY KEY,
    at    REAL NOT NULL
);

CREATE TABLE used_links (
    nonce      TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);

CREATE TABLE help_replies (
    phone TEXT NOT NULL,
    at    REAL NOT NULL
);
CREATE INDEX help_replies_phone ON help_replies (phone, at);
