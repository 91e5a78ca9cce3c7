"""The database, not only the code, refuses to change consent records.

UPDATE and DELETE of a row of consent_consentrecord fail, on PostgreSQL and SQLite alike. The one
exception is erasure: inside its own transaction it inserts a row into consent_recordunlock,
strips the identifiers (the ids, IP address and user agent, replaced by a keyed hash), and deletes
that row before committing; even then the trigger lets no other column change.
"""

from django.db import migrations

POSTGRES = [
    """
    CREATE OR REPLACE FUNCTION consent_record_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'consent records are append-only: DELETE refused';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM consent_recordunlock) THEN
            RAISE EXCEPTION 'consent records are append-only: UPDATE refused';
        END IF;
        IF NEW.id <> OLD.id OR NEW.purpose_id <> OLD.purpose_id OR NEW.granted <> OLD.granted
           OR NEW.policy_version_id IS DISTINCT FROM OLD.policy_version_id OR NEW.source <> OLD.source
           OR NEW.recorded_at <> OLD.recorded_at OR NEW.gpc <> OLD.gpc
           OR NEW.user_id <> '' OR NEW.anonymous_id <> '' OR NEW.ip_address <> '' OR NEW.user_agent <> ''
           OR NEW.erased_subject = '' THEN
            RAISE EXCEPTION 'erasure may only replace the identifiers of a consent record with a hash';
        END IF;
        RETURN NEW;
    END $$;
    """,
    """
    CREATE TRIGGER consent_record_append_only BEFORE UPDATE OR DELETE ON consent_consentrecord
    FOR EACH ROW EXECUTE FUNCTION consent_record_append_only();
    """,
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS consent_record_append_only ON consent_consentrecord;",
    "DROP FUNCTION IF EXISTS consent_record_append_only();",
]

SQLITE = [
    """
    CREATE TRIGGER consent_record_no_delete BEFORE DELETE ON consent_consentrecord
    BEGIN SELECT RAISE(ABORT, 'consent records are append-only: DELETE refused'); END;
    """,
    """
    CREATE TRIGGER consent_record_no_update BEFORE UPDATE ON consent_consentrecord
    WHEN NOT EXISTS (SELECT 1 FROM consent_recordunlock)
    BEGIN SELECT RAISE(ABORT, 'consent records are append-only: UPDATE refused'); END;
    """,
    """
    CREATE TRIGGER consent_record_erasure_only BEFORE UPDATE ON consent_consentrecord
    WHEN EXISTS (SELECT 1 FROM consent_recordunlock) AND (
        NEW.id <> OLD.id OR NEW.purpose_id <> OLD.purpose_id OR NEW.granted <> OLD.granted
        OR NEW.policy_version_id IS NOT OLD.policy_version_id OR NEW.source <> OLD.source
        OR NEW.recorded_at <> OLD.recorded_at OR NEW.gpc <> OLD.gpc
        OR NEW.user_id <> '' OR NEW.anonymous_id <> '' OR NEW.ip_address <> '' OR NEW.user_agent <> ''
        OR NEW.erased_subject = '')
    BEGIN SELECT RAISE(ABORT, 'erasure may only replace the identifiers of a consent record with a hash'); END;
    """,
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS consent_record_no_delete;",
    "DROP TRIGGER IF EXISTS consent_record_no_update;",
    "DROP TRIGGER IF EXISTS consent_record_erasure_only;",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            raise RuntimeError(f"No append-only guard for {schema_editor.connection.vendor}; add one here.")
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRES_REVERSE, "sqlite": SQLITE_REVERSE}),
        )
    ]
