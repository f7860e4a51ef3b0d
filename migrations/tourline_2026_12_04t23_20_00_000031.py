"""`booking_hold(...)`: a booking hold in one statement on PostgreSQL (issue 19).

Called as `SELECT booking_hold(...)` on its own (or inside the caller's transaction), it
locks the departure row (as `lock_departure` does), checks that it is on sale, finds its
free seats with a snapshot taken after the lock (a PL/pgSQL function's statements each
take a fresh one: one plain statement would read them as they were before it waited for
the lock), chooses the party's seats as `app.booking.services.inventory.choose_seats`
does, prices them from the fares it is given and inserts the booking, its lines and its
audit event. It answers JSON: `{"outcome": "held", "expires_at", "lines": [...]}`, or why
not (`missing`, `unsellable`, `overdue`, `short`, `unavailable`, `no_fare`,
`reference_taken`) and writes nothing then; the caller turns that into the error it was
before, and on `overdue` (holds of the departure whose time ran out, which must be
expired first) takes the multi-statement path. The partial unique index on live lines
still guards every seat; foreign keys stay.

SQLite has no such function: it keeps the multi-statement IMMEDIATE transaction.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine

ID = "2026-12-04T23:20:00:000031"
VERSION = "1.38.0"
DESCRIPTION = "booking_hold(): a booking hold in one statement (PostgreSQL)"

BOOKING_HOLD = r"""
CREATE OR REPLACE FUNCTION booking_hold(
    p_departure uuid, p_now timestamptz, p_agency uuid, p_booking uuid,
    p_reference text, p_token_hash text, p_channel text, p_hold_minutes integer,
    p_pickup_stop uuid, p_contact_name text, p_contact_email text, p_contact_phone text,
    p_locale text, p_currency text, p_partner_uuid text, p_actor text,
    -- One entry per line, in the lines' order. Counts: the class asked for, label NULL
    -- (a class's lines are consecutive). Labels: the label asked for, class NULL.
    p_classes text[], p_types text[], p_labels text[], p_names text[], p_documents text[],
    -- The fares, per (class, passenger type): retail and charged price, currency.
    p_fare_classes text[], p_fare_types text[], p_fare_retail integer[],
    p_fare_charged integer[], p_fare_currencies text[], p_agency_net boolean
) RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    dep record;
    n integer := cardinality(p_types);
    -- The seats on sale to this booker, in seat order.
    av_id uuid[]; av_label text[]; av_class text[]; av_pos text[];
    av_car integer[]; av_comp integer[]; av_row integer[]; av_key integer[];
    -- What each line gets.
    l_seat uuid[] := array_fill(NULL::uuid, ARRAY[n]);
    l_label text[] := array_fill(NULL::text, ARRAY[n]);
    l_class text[] := array_fill(NULL::text, ARRAY[n]);
    l_retail integer[] := array_fill(NULL::integer, ARRAY[n]);
    l_charged integer[] := array_fill(NULL::integer, ARRAY[n]);
    l_currency text[] := array_fill(NULL::text, ARRAY[n]);
    i integer; j integer; k integer; v_first integer; v_size integer; v_free integer;
    v_class text; v_expires timestamptz;
    pick record;
    fare record;
BEGIN
    SELECT d.id, d.operator, d.vehicle, d.status, d.departs_at, d.sales_open_at,
           d.sales_close_at
    INTO dep FROM departure d WHERE d.id = p_departure FOR UPDATE;
    IF NOT FOUND THEN
        RETURN '{"outcome": "missing"}';
    END IF;
    IF dep.status <> 'published'
       OR (dep.sales_open_at IS NOT NULL AND p_now < dep.sales_open_at)
       OR p_now >= coalesce(dep.sales_close_at, dep.departs_at) THEN
        RETURN json_build_object(
            'outcome', 'unsellable', 'status', dep.status, 'departs_at', dep.departs_at,
            'sales_open_at', dep.sales_open_at, 'sales_close_at', dep.sales_close_at)::text;
    END IF;
    IF EXISTS (
        SELECT 1 FROM booking b
        WHERE b.departure = p_departure AND b.status = 'on_hold' AND b.expires_at <= p_now
    ) THEN
        RETURN '{"outcome": "overdue"}';
    END IF;

    -- Not blocked, not held by a live line, and not among the last seats of a class that
    -- other agencies' running allotments keep (their unused seats).
    WITH kept AS (
        SELECT a.seat_class, sum(greatest(0, a.seats - (
            SELECT count(*) FROM booking_line l JOIN booking b ON b.id = l.booking
            WHERE l.departure = a.departure AND l.seat_class = a.seat_class AND l.live
              AND b.agency = a.agency
              AND (b.status = 'confirmed' OR (b.status = 'on_hold' AND b.expires_at > p_now))
        ))) AS seats
        FROM allotment a
        WHERE a.departure = p_departure AND a.released_at IS NULL AND a.release_at > p_now
          AND a.agency IS DISTINCT FROM p_agency
        GROUP BY a.seat_class
    ),
    unheld AS (
        SELECT s.id, s.label, s.seat_class, s.position, s.car, s.compartment, s.seat_row,
               s.sort_key,
               row_number() OVER (PARTITION BY s.seat_class ORDER BY s.sort_key DESC) AS from_end
        FROM seat s
        WHERE s.vehicle = dep.vehicle AND s.blocked_reason IS NULL
          AND NOT EXISTS (
              SELECT 1 FROM departure_seat_block x WHERE x.departure = p_departure AND x.seat = s.id
          )
          AND NOT EXISTS (
              SELECT 1 FROM booking_line l
              WHERE l.departure = p_departure AND l.seat = s.id AND l.live
          )
    )
    SELECT array_agg(u.id ORDER BY u.sort_key), array_agg(u.label ORDER BY u.sort_key),
           array_agg(u.seat_class ORDER BY u.sort_key), array_agg(u.position ORDER BY u.sort_key),
           array_agg(u.car ORDER BY u.sort_key), array_agg(u.compartment ORDER BY u.sort_key),
           array_agg(u.seat_row ORDER BY u.sort_key), array_agg(u.sort_key ORDER BY u.sort_key)
    INTO av_id, av_label, av_class, av_pos, av_car, av_comp, av_row, av_key
    FROM unheld u LEFT JOIN kept ON kept.seat_class = u.seat_class
    WHERE u.from_end > coalesce(kept.seats, 0);

    IF p_labels IS NULL THEN
        -- Counts: each class's party (consecutive lines), seated as `choose_seats` does.
        i := 1;
        WHILE i <= n LOOP
            v_class := p_classes[i];
            v_first := i;
            WHILE i <= n AND p_classes[i] = v_class LOOP
                i := i + 1;
            END LOOP;
            v_size := i - v_first;
            SELECT count(*) INTO v_free FROM unnest(av_class) c WHERE c = v_class;
            IF v_size > v_free THEN
                RETURN json_build_object(
                    'outcome', 'short', 'seat_class', v_class, 'free', v_free)::text;
            END IF;
            FOR pick IN
                WITH av AS (
                    SELECT * FROM unnest(av_id, av_label, av_pos, av_car, av_comp, av_row,
                                         av_key, av_class)
                        AS t(id, label, pos, car, comp, seat_row, key, cls)
                    WHERE t.cls = v_class
                ),
                party AS (
                    SELECT p.kind, p.idx FROM unnest(p_types[v_first : v_first + v_size - 1])
                        WITH ORDINALITY AS p(kind, idx)
                ),
                groups AS (
                    SELECT av.car, av.comp, av.seat_row, count(*) AS seats, min(av.key) AS first_key
                    FROM av GROUP BY av.car, av.comp, av.seat_row
                ),
                best AS (
                    SELECT * FROM groups WHERE groups.seats >= v_size
                    ORDER BY groups.seats, groups.first_key LIMIT 1
                ),
                -- The fullest compartment or row that fits everyone: its lower berths
                -- first if the party has seniors or children, else its seats in order.
                in_best AS (
                    SELECT av.* FROM av JOIN best
                      ON (av.car, av.comp, av.seat_row)
                         IS NOT DISTINCT FROM (best.car, best.comp, best.seat_row)
                    ORDER BY CASE WHEN EXISTS (SELECT 1 FROM party WHERE party.kind <> 'adult')
                                  THEN CASE av.pos WHEN 'lower' THEN 0 WHEN 'window' THEN 0
                                       WHEN 'middle' THEN 1 WHEN 'aisle' THEN 1
                                       WHEN 'upper' THEN 2 ELSE 3 END
                                  ELSE 0 END,
                             av.key
                    LIMIT v_size
                ),
                -- Otherwise the tightest run of neighbouring seats.
                numbered AS (
                    SELECT av.*, row_number() OVER (ORDER BY av.key) AS rn,
                           lead(av.key, v_size - 1) OVER (ORDER BY av.key) - av.key AS span
                    FROM av
                ),
                start AS (
                    SELECT numbered.rn FROM numbered WHERE numbered.span IS NOT NULL
                    ORDER BY numbered.span, numbered.rn LIMIT 1
                ),
                run AS (
                    SELECT numbered.id, numbered.label, numbered.pos, numbered.key
                    FROM numbered, start
                    WHERE NOT EXISTS (SELECT 1 FROM best)
                      AND numbered.rn >= start.rn AND numbered.rn < start.rn + v_size
                ),
                chosen AS (
                    SELECT in_best.id, in_best.label, in_best.pos, in_best.key FROM in_best
                    UNION ALL
                    SELECT run.id, run.label, run.pos, run.key FROM run
                ),
                -- The most comfortable seats to seniors, then children, then adults.
                by_comfort AS (
                    SELECT chosen.*, row_number() OVER (
                        ORDER BY CASE chosen.pos WHEN 'lower' THEN 0 WHEN 'window' THEN 0
                                 WHEN 'middle' THEN 1 WHEN 'aisle' THEN 1
                                 WHEN 'upper' THEN 2 ELSE 3 END, chosen.key) AS rank
                    FROM chosen
                ),
                by_priority AS (
                    SELECT party.idx, row_number() OVER (
                        ORDER BY CASE party.kind WHEN 'senior' THEN 0 WHEN 'child' THEN 1
                                 ELSE 2 END, party.idx) AS rank
                    FROM party
                )
                SELECT by_priority.idx, by_comfort.id, by_comfort.label
                FROM by_priority JOIN by_comfort ON by_comfort.rank = by_priority.rank
            LOOP
                j := v_first + pick.idx::integer - 1;
                l_seat[j] := pick.id; l_label[j] := pick.label; l_class[j] := v_class;
            END LOOP;
        END LOOP;
    END IF;

    -- Chosen seats: each must be on sale. Every line: a fare for its passenger, checked
    -- line by line after its seat (the first line that fails is the one named).
    FOR i IN 1 .. n LOOP
        IF p_labels IS NOT NULL THEN
            k := array_position(av_label, p_labels[i]);
            IF k IS NULL THEN
                RETURN json_build_object('outcome', 'unavailable', 'index', i - 1)::text;
            END IF;
            l_seat[i] := av_id[k]; l_label[i] := av_label[k]; l_class[i] := av_class[k];
        END IF;
        SELECT f.retail, f.charged, f.currency INTO fare
        FROM unnest(p_fare_classes, p_fare_types, p_fare_retail, p_fare_charged,
                    p_fare_currencies) AS f(cls, kind, retail, charged, currency)
        WHERE f.cls = l_class[i] AND f.kind = p_types[i];
        IF NOT FOUND THEN
            RETURN json_build_object(
                'outcome', 'no_fare', 'index', i - 1, 'seat_class', l_class[i])::text;
        END IF;
        l_retail[i] := fare.retail; l_charged[i] := fare.charged;
        l_currency[i] := fare.currency;
    END LOOP;

    v_expires := least(p_now + make_interval(mins => p_hold_minutes),
                     coalesce(dep.sales_close_at, dep.departs_at));
    INSERT INTO booking (
        id, reference, token_hash, operator, departure, channel, status, expires_at,
        pickup_stop, contact_name, contact_email, contact_phone, locale, total_amount,
        retail_amount, currency, agency, partner_uuid, created_at, updated_at)
    VALUES (
        p_booking, p_reference, p_token_hash, dep.operator, p_departure, p_channel,
        'on_hold', v_expires, p_pickup_stop, p_contact_name, p_contact_email, p_contact_phone,
        p_locale, (SELECT sum(c) FROM unnest(l_charged) c),
        CASE WHEN p_agency_net THEN (SELECT sum(r) FROM unnest(l_retail) r) END,
        p_currency, p_agency, p_partner_uuid, p_now, p_now)
    ON CONFLICT (reference) DO NOTHING;
    IF NOT FOUND THEN
        RETURN '{"outcome": "reference_taken"}';
    END IF;
    INSERT INTO booking_line (
        id, booking, departure, seat, seat_label, seat_class, passenger_type, price_amount,
        currency, retail_amount, position, passenger_name, id_document, live)
    SELECT gen_random_uuid(), p_booking, p_departure, l_seat[x], l_label[x], l_class[x],
           p_types[x], l_charged[x], l_currency[x],
           CASE WHEN p_agency_net THEN l_retail[x] END, x,
           coalesce(p_names[x], ''), coalesce(p_documents[x], ''), true
    FROM generate_series(1, n) AS x;
    INSERT INTO booking_event (id, booking, at, actor, from_status, to_status, reason, details)
    VALUES (gen_random_uuid(), p_booking, p_now, p_actor, NULL, 'on_hold', 'created',
            json_build_object('seats', to_json(l_label), 'channel', p_channel));
    RETURN json_build_object(
        'outcome', 'held', 'expires_at', v_expires, 'seats', to_json(l_seat),
        'labels', to_json(l_label), 'classes', to_json(l_class),
        'retail', to_json(l_retail), 'charged', to_json(l_charged),
        'currencies', to_json(l_currency))::text;
END
$fn$
"""


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)

    async def create_function():
        engine = engine_finder()
        if isinstance(engine, PostgresEngine):
            await engine.run_ddl(BOOKING_HOLD)

    manager.add_raw(create_function)
    return manager
