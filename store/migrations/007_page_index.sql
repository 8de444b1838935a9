-- pagerd schema, version 7: find a person's pending pages without scanning every timer
-- (bundling looks them up on each send).

CREATE INDEX timers_page_person ON timers (
    json_extract(payload, '$.user'), json_extract(payload, '$.method')
) WHERE kind = 'page';
