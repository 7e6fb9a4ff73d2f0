-- Workflows and batches: steps that wait for other jobs (jobs::workflow).
--
-- A step is a job row with `workflow_id`; its StepInfo is in `record`
-- (`record->'step'`). While it waits for dependencies it is `P` and held
-- (`held` = chr(3), a key no concurrency limit may have): out of the
-- waiting index, so reserve never sees it, and `waiting` counts the jobs it
-- still waits for. `job_deps` has a row per (dependant, dependency): done
-- once the dependency finished, with what it left, in the order they
-- finished (`seq`). `workflows` holds each workflow's counts.
--
-- Resolution is done by triggers, so it is part of the statement (and
-- transaction) that makes a step final, whichever it is: a finish (batched
-- or not), a cancel, a lease recovery failing the last attempt, a delete
-- or purge of a step not finished, or a dependant cancelled by resolution
-- itself (the cascade is the trigger firing again). The triggers' WHEN
-- clauses leave plain jobs (workflow_id NULL) alone.
--
-- Lock order, to keep deadlocks rare (a statement that deadlocks anyway
-- is retried by the caller): a dependency's row, then the dependant's,
-- then the workflow's.
--
-- `{channel}` is the queue's notification channel, as in the queries.

ALTER TABLE {schema}.jobs
    ADD COLUMN workflow_id uuid,
    -- How many jobs a step held for its dependencies still waits for.
    ADD COLUMN waiting     integer,
    -- The order steps were stored in, within their workflow.
    ADD COLUMN wf_seq      bigint;

-- A workflow's steps, in the order stored.
CREATE INDEX jobs_workflow ON {schema}.jobs (workflow_id, wf_seq)
    WHERE workflow_id IS NOT NULL;

CREATE SEQUENCE {schema}.wf_seq;

CREATE TABLE {schema}.workflows (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    kind       text        NOT NULL,
    total      bigint      NOT NULL DEFAULT 0,
    pending    bigint      NOT NULL DEFAULT 0,
    completed  bigint      NOT NULL DEFAULT 0,
    failed     bigint      NOT NULL DEFAULT 0,
    cancelled  bigint      NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {schema}.job_deps (
    child  uuid    NOT NULL,
    parent uuid    NOT NULL,
    -- The dependency's step name.
    step   text    NOT NULL,
    done   boolean NOT NULL DEFAULT false,
    -- How the dependency ended, and its result, once recorded.
    status "char",
    result jsonb,
    -- The order the dependencies finished in.
    seq    bigint,
    PRIMARY KEY (child, parent)
);

-- Resolution: the dependants still waiting for a job.
CREATE INDEX job_deps_waiting ON {schema}.job_deps (parent) WHERE NOT done;

-- The `cancelled` event of a step that resolution (or its push) cancelled;
-- the statements that end jobs otherwise send their events themselves.
CREATE FUNCTION {schema}.jobs_cancelled_event(p_id uuid, p_name text)
RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify({channel}, 'e' || json_build_array(json_build_array(
                                    'cancelled', p_id, left(p_name, 2000)))::text)
$$;

-- A step ended with `p_status` (C, F, X or E): counts it in its workflow
-- and resolves the dependants still waiting for it. A dependant whose last
-- dependency this was is placed (ready, or due at its scheduled time); one
-- that cannot run any more (a dependency did not complete and it does not
-- run always) is cancelled, which resolves its own dependants in turn (the
-- update fires jobs_step_ended). Each dependant's row is locked by the
-- decrement, so of two transactions ending its last two dependencies
-- exactly one sees 0 and releases it.
CREATE FUNCTION {schema}.jobs_resolve(p_id uuid, p_workflow uuid, p_status "char",
                                      p_result jsonb, p_step text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    dep record;
    left_n integer;
    always boolean;
    due timestamptz;
    child_name text;
    word text := CASE p_status WHEN 'C' THEN 'completed' WHEN 'F' THEN 'failed'
                               WHEN 'X' THEN 'cancelled' WHEN 'E' THEN 'expired'
                               ELSE 'finished' END;
BEGIN
    FOR dep IN
        SELECT child FROM {schema}.job_deps
        WHERE parent = p_id AND NOT done
        ORDER BY child
    LOOP
        UPDATE {schema}.jobs
        SET waiting = waiting - 1
        WHERE id = dep.child AND status = 'P' AND held = chr(3)
        RETURNING waiting, coalesce((record->'step'->>'run_always')::boolean, false)
            INTO left_n, always;
        IF NOT FOUND THEN
            -- It ended meanwhile (cancelled, deleted): nothing to record.
            UPDATE {schema}.job_deps SET done = true
            WHERE child = dep.child AND parent = p_id;
            CONTINUE;
        END IF;
        UPDATE {schema}.job_deps
        SET done = true, status = p_status, result = p_result,
            seq = nextval('{schema}.wf_seq')
        WHERE child = dep.child AND parent = p_id;
        IF p_status <> 'C' AND NOT always THEN
            UPDATE {schema}.jobs
            SET status = 'X', held = NULL, waiting = 0, completed_at = now(),
                last_error = format('dependency `%s` ended %s', p_step, word)
            WHERE id = dep.child
            RETURNING name INTO child_name;
            PERFORM {schema}.jobs_cancelled_event(dep.child, child_name);
        ELSIF left_n <= 0 THEN
            UPDATE {schema}.jobs
            SET held = NULL, waiting = 0,
                run_at = greatest(coalesce(scheduled_at, now()), now()),
                seq = nextval('{schema}.job_seq')
            WHERE id = dep.child
            RETURNING run_at INTO due;
            PERFORM pg_notify({channel},
                              CASE WHEN due <= now() THEN 'w'
                                   ELSE 'd' || (extract(epoch FROM due) * 1000000)::bigint
                              END);
        END IF;
    END LOOP;
    -- Last: the workflow's row is the most contended lock.
    UPDATE {schema}.workflows
    SET pending = greatest(pending - 1, 0),
        completed = completed + (p_status = 'C')::int,
        failed = failed + (p_status IN ('F', 'E'))::int,
        cancelled = cancelled + (p_status = 'X')::int
    WHERE id = p_workflow;
END
$$;

-- A step became final: resolve it.
CREATE FUNCTION {schema}.jobs_step_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {schema}.jobs_resolve(NEW.id, NEW.workflow_id, NEW.status, NEW.result,
                                  NEW.record->'step'->>'name');
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_step_ended
    AFTER UPDATE OF status ON {schema}.jobs
    FOR EACH ROW
    WHEN (NEW.workflow_id IS NOT NULL
          AND NEW.status IN ('C', 'F', 'X', 'E')
          AND OLD.status NOT IN ('C', 'F', 'X', 'E'))
    EXECUTE FUNCTION {schema}.jobs_step_ended();

-- A finished step waits again (an admin retry): its workflow counts it as
-- pending again.
CREATE FUNCTION {schema}.jobs_step_retried() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {schema}.workflows
    SET pending = pending + 1,
        completed = greatest(completed - (OLD.status = 'C')::int, 0),
        failed = greatest(failed - (OLD.status IN ('F', 'E'))::int, 0),
        cancelled = greatest(cancelled - (OLD.status = 'X')::int, 0)
    WHERE id = NEW.workflow_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_step_retried
    AFTER UPDATE OF status ON {schema}.jobs
    FOR EACH ROW
    WHEN (NEW.workflow_id IS NOT NULL
          AND OLD.status IN ('C', 'F', 'X', 'E')
          AND NEW.status NOT IN ('C', 'F', 'X', 'E'))
    EXECUTE FUNCTION {schema}.jobs_step_retried();

-- A step was stored (enqueue.sql set workflow_id, wf_seq, and — if it has
-- dependencies — held chr(3) and `waiting` to their number). Checks what
-- it names: every dependency exists (stored before, or earlier in the same
-- statement: AFTER triggers run once the statement stored every row), and
-- every step it blocks is a step of the same workflow still waiting for
-- its dependencies; else the statement fails (SQLSTATE JW001), storing
-- nothing. A dependency already final is recorded at once: completed, its
-- result; otherwise the step is cancelled (unless it runs always). Each
-- dependency's row is locked (FOR SHARE) while it is read, so it cannot
-- end between this read and the commit unseen: its resolution waits for
-- this transaction and then finds the new job_deps row.
CREATE FUNCTION {schema}.jobs_step_stored() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_step jsonb := NEW.record->'step';
    v_dep jsonb;
    v_blocked text;
    v_parent record;
    v_target record;
    v_waits integer := 0;
    v_reason text;
    v_always boolean := coalesce((v_step->>'run_always')::boolean, false);
BEGIN
    FOR v_dep IN SELECT value FROM jsonb_array_elements(coalesce(v_step->'depends_on', '[]'))
    LOOP
        SELECT status, result, workflow_id INTO v_parent
        FROM {schema}.jobs WHERE id = (v_dep->>'job')::uuid
        FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'JW001', MESSAGE = format(
                'step `%s` of workflow `%s` depends on job %s (`%s`), which does not exist',
                v_step->>'name', v_step->>'workflow_name', v_dep->>'job', v_dep->>'step');
        END IF;
        IF v_parent.workflow_id IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'JW001', MESSAGE = format(
                'step `%s` of workflow `%s` depends on job %s (`%s`), which is not a workflow step',
                v_step->>'name', v_step->>'workflow_name', v_dep->>'job', v_dep->>'step');
        END IF;
        IF v_parent.status IN ('C', 'F', 'X', 'E') THEN
            INSERT INTO {schema}.job_deps (child, parent, step, done, status, result, seq)
            VALUES (NEW.id, (v_dep->>'job')::uuid, v_dep->>'step', true, v_parent.status,
                    v_parent.result, nextval('{schema}.wf_seq'))
            ON CONFLICT (child, parent) DO NOTHING;
            IF v_parent.status <> 'C' AND NOT v_always AND v_reason IS NULL THEN
                v_reason := format('dependency `%s` ended %s', v_dep->>'step',
                                 CASE v_parent.status WHEN 'F' THEN 'failed'
                                      WHEN 'X' THEN 'cancelled' ELSE 'expired' END);
            END IF;
        ELSE
            INSERT INTO {schema}.job_deps (child, parent, step)
            VALUES (NEW.id, (v_dep->>'job')::uuid, v_dep->>'step')
            ON CONFLICT (child, parent) DO NOTHING;
            IF FOUND THEN
                v_waits := v_waits + 1;
            END IF;
        END IF;
    END LOOP;
    FOR v_blocked IN SELECT value FROM jsonb_array_elements_text(coalesce(v_step->'blocks', '[]'))
    LOOP
        SELECT workflow_id, status, held INTO v_target
        FROM {schema}.jobs WHERE id = v_blocked::uuid
        FOR UPDATE;
        IF NOT FOUND OR v_target.workflow_id IS DISTINCT FROM NEW.workflow_id
           OR v_target.status <> 'P' OR v_target.held IS DISTINCT FROM chr(3) THEN
            RAISE EXCEPTION USING ERRCODE = 'JW001', MESSAGE = format(
                'job %s is not a step of workflow `%s` that still waits for its '
                'dependencies, so it cannot wait for step `%s` too',
                v_blocked, v_step->>'workflow_name', v_step->>'name');
        END IF;
        INSERT INTO {schema}.job_deps (child, parent, step)
        VALUES (v_blocked::uuid, NEW.id, v_step->>'name')
        ON CONFLICT (child, parent) DO NOTHING;
        IF FOUND THEN
            UPDATE {schema}.jobs SET waiting = waiting + 1 WHERE id = v_blocked::uuid;
        END IF;
    END LOOP;
    INSERT INTO {schema}.workflows AS w (id, name, kind, total, pending)
    VALUES (NEW.workflow_id, coalesce(v_step->>'workflow_name', ''),
            coalesce(v_step->>'kind', 'workflow'), 1, 1)
    ON CONFLICT (id) DO UPDATE SET total = w.total + 1, pending = w.pending + 1;
    IF v_reason IS NOT NULL THEN
        -- Fires jobs_step_ended: counted, announced, its dependants resolved.
        UPDATE {schema}.jobs
        SET status = 'X', held = NULL, waiting = 0, completed_at = now(), last_error = v_reason
        WHERE id = NEW.id;
        PERFORM {schema}.jobs_cancelled_event(NEW.id, NEW.name);
    ELSIF v_waits = 0 AND NEW.held = chr(3) THEN
        -- Every dependency completed already: ready now.
        UPDATE {schema}.jobs SET held = NULL, waiting = 0 WHERE id = NEW.id;
        PERFORM pg_notify({channel}, 'w');
    ELSIF v_waits <> coalesce(NEW.waiting, 0) THEN
        UPDATE {schema}.jobs SET waiting = v_waits WHERE id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_step_stored
    AFTER INSERT ON {schema}.jobs
    FOR EACH ROW
    WHEN (NEW.workflow_id IS NOT NULL)
    EXECUTE FUNCTION {schema}.jobs_step_stored();

-- A step left the table (delete, purge, retention). Not finished, its
-- dependants see it as cancelled (and it is counted so). Its own
-- dependency records go with it; the workflow goes with its last step
-- (its row locked first, so two transactions deleting its last two steps
-- do not both miss the other's).
CREATE FUNCTION {schema}.jobs_step_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status NOT IN ('C', 'F', 'X', 'E') THEN
        PERFORM {schema}.jobs_resolve(OLD.id, OLD.workflow_id, 'X', OLD.result,
                                      OLD.record->'step'->>'name');
    END IF;
    DELETE FROM {schema}.job_deps WHERE child = OLD.id;
    PERFORM 1 FROM {schema}.workflows WHERE id = OLD.workflow_id FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM {schema}.jobs WHERE workflow_id = OLD.workflow_id) THEN
        DELETE FROM {schema}.workflows WHERE id = OLD.workflow_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_step_gone
    AFTER DELETE ON {schema}.jobs
    FOR EACH ROW
    WHEN (OLD.workflow_id IS NOT NULL)
    EXECUTE FUNCTION {schema}.jobs_step_gone();
