-- post_purchase install script, built from src/*.sql by the Makefile.
-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION post_purchase" to load this file. \quit

-- The metrics are for every role; the schema is created by CREATE EXTENSION
-- (from the control file) and owned by the installing superuser.
GRANT USAGE ON SCHEMA post_purchase TO PUBLIC;
