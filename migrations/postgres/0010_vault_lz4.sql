-- The raw vault compresses with lz4 where the server has it (PostgreSQL 14+ built
-- with lz4, as Debian's is): pglz took about 3 ms of the 10 ms it costs to store an
-- 800 kB document, lz4 well under one (issue 16, ADR 24). Only new values are
-- compressed the new way; a server without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE vault_chunks ALTER COLUMN bytes SET COMPRESSION lz4;
EXCEPTION
    WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
        RAISE NOTICE 'lz4 is not available here: the vault keeps pglz';
END
$$;
