-- Queue-wide concurrency limits (Take::limits): a queue's slots are the
-- `slots` row keyed chr(1) || 'q:' || queue; a job reserved under one
-- names it in `qslot`, so that finishing it gives the slot back.
ALTER TABLE {schema}.jobs ADD COLUMN qslot text;
