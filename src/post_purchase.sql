-- post_purchase install script, built from src/*.sql by the Makefile.
-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION post_purchase" to load this file. \quit

-- CREATE EXTENSION installs into an existing schema named in the control
-- file as it finds it.  One that a role other than a superuser owns, may
-- create objects in, or has filled already would let that role put
-- functions and operators where this script (run with search_path =
-- post_purchase) and the extension's SQL resolve names, or drop the
-- extension's tables: refuse it.  An empty schema a superuser made (as
-- pg_restore does) is fine.  Everything here is qualified: the schema is
-- on search_path already.  Install only: an upgrade script must not repeat
-- this check, the schema holds the extension by then.
DO $$
DECLARE
	schema_oid pg_catalog.oid;
	schema_owner pg_catalog.oid;
	creators pg_catalog.text;
	found_object pg_catalog.text;
BEGIN
	SELECT n.oid, n.nspowner INTO schema_oid, schema_owner
	FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) 'post_purchase';
	IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) schema_owner) THEN
		RAISE EXCEPTION 'schema "post_purchase" is owned by role %, which is not a superuser',
			pg_catalog.pg_get_userbyid(schema_owner)
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'CREATE EXTENSION installs into an existing schema as it is, and its owner could replace or shadow the extension''s objects.',
				  HINT = 'Drop the schema and run CREATE EXTENSION again: it creates the schema itself.';
	END IF;
	SELECT pg_catalog.string_agg(CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN 'PUBLIC'
									  ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, ', ')
	INTO creators
	FROM pg_catalog.pg_namespace n CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a
	WHERE n.oid OPERATOR(pg_catalog.=) schema_oid AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
	  AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
	  AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) a.grantee), false);
	IF creators IS NOT NULL THEN
		RAISE EXCEPTION 'roles other than its owner may create objects in schema "post_purchase": %', creators
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'CREATE EXTENSION installs into an existing schema as it is, and they could shadow the extension''s objects.',
				  HINT = 'Revoke CREATE on the schema from them (or drop the schema) and run CREATE EXTENSION again.';
	END IF;
	-- pg_depend names every object that lives in a schema; the catalogs
	-- of the kinds that matter most are read as well
	SELECT i.type OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) i.identity INTO found_object
	FROM (SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
		  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass::pg_catalog.oid
			AND d.refobjid OPERATOR(pg_catalog.=) schema_oid
			AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_extension'::pg_catalog.regclass::pg_catalog.oid
		  UNION ALL
		  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, c.oid FROM pg_catalog.pg_class c
		  WHERE c.relnamespace OPERATOR(pg_catalog.=) schema_oid
		  UNION ALL
		  SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid, p.oid FROM pg_catalog.pg_proc p
		  WHERE p.pronamespace OPERATOR(pg_catalog.=) schema_oid
		  UNION ALL
		  SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid, t.oid FROM pg_catalog.pg_type t
		  WHERE t.typnamespace OPERATOR(pg_catalog.=) schema_oid
		  UNION ALL
		  SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass::pg_catalog.oid, x.oid FROM pg_catalog.pg_operator x
		  WHERE x.oprnamespace OPERATOR(pg_catalog.=) schema_oid) o
	CROSS JOIN LATERAL pg_catalog.pg_identify_object(o.classid, o.objid, 0) i
	LIMIT 1;
	IF found_object IS NOT NULL THEN
		RAISE EXCEPTION 'schema "post_purchase" already contains %', found_object
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'The extension creates every object in its schema itself; one made before could run in place of the extension''s own.',
				  HINT = 'Drop the schema (or move its objects to another schema) and run CREATE EXTENSION again.';
	END IF;
END
$$;

-- The metrics are for every role; the schema is created by CREATE EXTENSION
-- (from the control file) and owned by the installing superuser.
GRANT USAGE ON SCHEMA post_purchase TO PUBLIC;
