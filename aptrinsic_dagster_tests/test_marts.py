"""The dbt marts through Dagster: exact figures on a fixture counted by hand, partitions that rebuild
exactly their days, declarative automation, and the sandbox end to end with every dbt test passing.

The fixture (March 2026, UTC; first visits from the users table):

    user  account  first visit   sessions
    u1    a1       2026-02-10    03-01 10:00, 04-01 00:00
    u2    a1       2026-02-10    03-02 00:00, 03-30 23:59:59.999
    u3    a2       2026-02-10    03-25 08:00, 03-31 12:00 (no account id)
    u4    a2       (none)        03-24 12:00
    u5    a1       2026-03-31    03-31 00:00, 03-31 23:59:59.999
    account a3 has no activity at all.

On 03-31: DAU {u3, u5}; WAU (03-25..03-31) adds u2; MAU (03-02..03-31) adds u4 but not u1, whose
session on 03-01 is one day outside; u5 is first seen that day. NPS: 03-30 has 10, 8, 3, 9 (and a
view without a score, and a CES answer); 03-31 only detractors (0, 6).
"""

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import psycopg2
import pytest

from aptrinsic_dagster.marts import DBT_PROJECT_DIR, build_marts, dbt_project, dbt_resource
from aptrinsic_dagster.partitions import daily_partitions
from aptrinsic_dagster.resources import WarehouseResource
from aptrinsic_sandbox.postgres import PostgresServer

from .helpers import Warehouse, files_holding, query, row_count

# Each loads or builds for real (seconds to minutes): in `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow

MARCH = {"dagster/asset_partition_range_start": "2026-03-01", "dagster/asset_partition_range_end": "2026-03-31"}

RAW_DDL = """
CREATE SCHEMA aptrinsic_data;
CREATE TABLE aptrinsic_data.events_session (event_id VARCHAR, identify_id VARCHAR, date TIMESTAMPTZ,
    session_id VARCHAR, account_id VARCHAR, user_type VARCHAR, _dlt_load_id VARCHAR);
CREATE TABLE aptrinsic_data.events_page_view (event_id VARCHAR, identify_id VARCHAR, date TIMESTAMPTZ,
    session_id VARCHAR, account_id VARCHAR, path VARCHAR, _dlt_load_id VARCHAR);
CREATE TABLE aptrinsic_data.events_feature_match (event_id VARCHAR, identify_id VARCHAR, date TIMESTAMPTZ,
    session_id VARCHAR, account_id VARCHAR, feature_id VARCHAR, _dlt_load_id VARCHAR);
CREATE TABLE aptrinsic_data.events_custom (event_id VARCHAR, identify_id VARCHAR, date TIMESTAMPTZ,
    session_id VARCHAR, account_id VARCHAR, event_name VARCHAR, _dlt_load_id VARCHAR);
CREATE TABLE aptrinsic_data.survey_responses (event_id VARCHAR, identify_id VARCHAR, date TIMESTAMPTZ,
    session_id VARCHAR, account_id VARCHAR, engagement_id VARCHAR, content_type VARCHAR, question_type VARCHAR,
    survey_state VARCHAR, score BIGINT, _dlt_load_id VARCHAR);
CREATE TABLE aptrinsic_data.users (aptrinsic_id VARCHAR, identify_id VARCHAR, account_id VARCHAR,
    first_visit_date TIMESTAMPTZ, last_seen_date TIMESTAMPTZ, sign_up_date TIMESTAMPTZ, _dlt_load_id VARCHAR);
CREATE TABLE aptrinsic_data.accounts (id VARCHAR, name VARCHAR, plan VARCHAR, industry VARCHAR,
    number_of_employees BIGINT, number_of_users BIGINT, health_score BIGINT, csm VARCHAR, renewal_date TIMESTAMPTZ,
    create_date TIMESTAMPTZ, last_seen_date TIMESTAMPTZ, custom_attributes__tier VARCHAR, _dlt_load_id VARCHAR);
CREATE TABLE aptrinsic_data.feature_flags (id VARCHAR, name VARCHAR, type VARCHAR, parent_feature_id VARCHAR,
    property_key VARCHAR, status VARCHAR, _dlt_load_id VARCHAR);
CREATE TABLE aptrinsic_data.engagements (id VARCHAR, name VARCHAR, description VARCHAR, type VARCHAR,
    state VARCHAR, _dlt_load_id VARCHAR);
"""

# (event_id, identify_id, date, account_id); '' is how the API says "no account".
SESSIONS = [
    ("s1", "u1", "2026-03-01 10:00:00+00", "a1"),
    ("s2", "u2", "2026-03-02 00:00:00+00", "a1"),
    ("s3", "u4", "2026-03-24 12:00:00+00", "a2"),
    ("s4", "u3", "2026-03-25 08:00:00+00", "a2"),
    ("s5", "u2", "2026-03-30 23:59:59.999+00", "a1"),
    ("s6", "u5", "2026-03-31 00:00:00+00", "a1"),
    ("s7", "u5", "2026-03-31 23:59:59.999+00", "a1"),
    ("s8", "u3", "2026-03-31 12:00:00+00", ""),
    ("s9", "u1", "2026-04-01 00:00:00+00", "a1"),
]
PAGE_VIEWS = [
    ("p1", "u5", "2026-03-31 09:00:00+00", "a1"),
    ("p2", "u5", "2026-03-31 09:05:00+00", "a1"),
    ("p3", "u3", "2026-03-25 08:01:00+00", "a2"),
]
# (event_id, identify_id, date, account_id, feature_id)
FEATURE_MATCHES = [
    ("f1", "u5", "2026-03-31 09:01:00+00", "a1", "feat-reports"),
    ("f2", "u5", "2026-03-31 09:02:00+00", "a1", "feat-reports"),
    ("f3", "u3", "2026-03-25 08:02:00+00", "a2", "feat-reports"),
    ("f4", "u3", "2026-03-31 12:05:00+00", "", "feat-reports"),
    ("f5", "u2", "2026-03-31 10:00:00+00", "a1", "feat-export"),
]
CUSTOM = [("c1", "u5", "2026-03-31 09:03:00+00", "a1", "report_exported")]
# (event_id, identify_id, date, account_id, engagement_id, content_type, score)
SURVEYS = [
    ("r1", "u1", "2026-03-30 10:00:00+00", "a1", "eng-nps", "IN_APP_SURVEY_NPS", 10),
    ("r2", "u2", "2026-03-30 10:00:00+00", "a1", "eng-nps", "IN_APP_SURVEY_NPS", 8),
    ("r3", "u3", "2026-03-30 10:00:00+00", "a2", "eng-nps", "IN_APP_SURVEY_NPS", 3),
    ("r4", "u4", "2026-03-30 10:00:00+00", "a2", "eng-nps", "IN_APP_SURVEY_NPS", 9),
    ("r5", "u5", "2026-03-30 10:00:00+00", "a1", "eng-nps", "IN_APP_SURVEY_NPS", None),
    ("r6", "u1", "2026-03-30 11:00:00+00", "a1", "eng-ces", "IN_APP_SURVEY_CES", 2),
    ("r7", "u3", "2026-03-31 10:00:00+00", "a2", "eng-nps", "IN_APP_SURVEY_NPS", 0),
    ("r8", "u4", "2026-03-31 10:00:00+00", "a2", "eng-nps", "IN_APP_SURVEY_NPS", 6),
]
USERS = [
    ("u1", "a1", "2026-02-10 09:00:00+00"),
    ("u2", "a1", "2026-02-10 09:00:00+00"),
    ("u3", "a2", "2026-02-10 09:00:00+00"),
    ("u4", "a2", None),
    ("u5", "a1", "2026-03-31 00:00:00+00"),
]
ACCOUNTS = [("a1", "Acme", "pro", "gold"), ("a2", "Globex", "free", None), ("a3", "Initech", "free", "silver")]


def _execute(warehouse: Warehouse, sql: str, rows: list[tuple] | None = None) -> None:
    """``sql`` (``%s`` placeholders) once, or once per row of ``rows``, on either warehouse."""
    if warehouse.kind == "duckdb":
        with duckdb.connect(str(warehouse.duckdb_path)) as con:
            con.executemany(sql.replace("%s", "?"), rows) if rows else con.execute(sql)
        return
    con = psycopg2.connect(warehouse.url)
    try:
        with con, con.cursor() as cur:
            cur.executemany(sql, rows) if rows else cur.execute(sql)
    finally:
        con.close()


def _load_fixture(warehouse: Warehouse) -> None:
    _execute(warehouse, RAW_DDL)
    for table, rows in [("events_session", SESSIONS), ("events_page_view", PAGE_VIEWS)]:
        sql = f"INSERT INTO aptrinsic_data.{table} (event_id, identify_id, date, account_id) VALUES (%s, %s, %s, %s)"
        _execute(warehouse, sql, rows)
    _execute(
        warehouse,
        "INSERT INTO aptrinsic_data.events_feature_match (event_id, identify_id, date, account_id, feature_id) "
        "VALUES (%s, %s, %s, %s, %s)",
        FEATURE_MATCHES,
    )
    _execute(
        warehouse,
        "INSERT INTO aptrinsic_data.events_custom (event_id, identify_id, date, account_id, event_name) "
        "VALUES (%s, %s, %s, %s, %s)",
        CUSTOM,
    )
    _execute(
        warehouse,
        "INSERT INTO aptrinsic_data.survey_responses "
        "(event_id, identify_id, date, account_id, engagement_id, content_type, score) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        SURVEYS,
    )
    _execute(
        warehouse,
        "INSERT INTO aptrinsic_data.users (identify_id, account_id, first_visit_date) VALUES (%s, %s, %s)",
        USERS,
    )
    _execute(
        warehouse,
        "INSERT INTO aptrinsic_data.accounts (id, name, plan, custom_attributes__tier) VALUES (%s, %s, %s, %s)",
        ACCOUNTS,
    )
    _execute(
        warehouse,
        "INSERT INTO aptrinsic_data.feature_flags (id, name, type, parent_feature_id) VALUES "
        "('feat-reports', 'Reports', 'FEATURE', 'mod-analytics'), ('feat-export', 'Export', 'FEATURE', ''), "
        "('mod-analytics', 'Analytics', 'MODULE', '')",
    )
    _execute(
        warehouse,
        "INSERT INTO aptrinsic_data.engagements (id, name, type) VALUES "
        "('eng-nps', 'Quarterly NPS', 'IN_APP_NPS_SURVEY'), ('eng-ces', 'Effort', 'IN_APP_CES_SURVEY')",
    )


def _materialize(assets: list[dg.AssetsDefinition], warehouse: Warehouse, **kwargs) -> dg.ExecuteInProcessResult:
    """A run as an operator sets it up: the warehouse named by APTRINSIC_* and dlt's credentials variable."""
    resources = {"dbt": dbt_resource(dbt_project()), "warehouse": WarehouseResource()}
    with pytest.MonkeyPatch.context() as env:
        for name, value in warehouse.env.items():
            env.setenv(name, value)
        return dg.materialize(assets, resources=resources, instance=dg.DagsterInstance.ephemeral(), **kwargs)


@dataclass
class Built:
    warehouse: Warehouse
    results: dict[str, dg.ExecuteInProcessResult]
    postgres: PostgresServer | None

    def query(self, sql: str) -> list[tuple]:
        return self.warehouse.query(sql)

    def copy(self, folder: Path) -> Warehouse:
        """A warehouse of the test's own holding what this one holds."""
        if self.postgres is None:
            path = folder / "copy.duckdb"
            path.write_bytes(self.warehouse.duckdb_path.read_bytes())
            return Warehouse("duckdb", {"APTRINSIC_DUCKDB_PATH": str(path)}, path)
        name = f"copy_{uuid.uuid4().hex[:12]}"
        con = self.postgres.connect()
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.warehouse.url.rsplit("/", 1)[-1]}"')
        finally:
            con.close()
        url = self.postgres.url(name)
        env = {"APTRINSIC_DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": url}
        return Warehouse("postgres", env, folder / "unused.duckdb", url)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def fixture_marts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The fixture built once per warehouse: March as one partition range (one dbt run), then the whole
    marts. The same models and dbt tests run on DuckDB (dbt-duckdb) and Postgres (dbt-postgres)."""
    path = tmp_path_factory.mktemp("marts") / "fixture.duckdb"
    server = None
    if request.param == "duckdb":
        warehouse = Warehouse("duckdb", {"APTRINSIC_DUCKDB_PATH": str(path)}, path)
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"marts_{uuid.uuid4().hex[:12]}")
        env = {"APTRINSIC_DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": url}
        warehouse = Warehouse("postgres", env, path, url)
    _load_fixture(warehouse)
    daily, full = build_marts(dbt_project(), daily_partitions())
    results = {"daily": _materialize([daily], warehouse, tags=MARCH), "full": _materialize([full], warehouse)}
    yield Built(warehouse, results, server)


def _day(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def test_every_mart_builds_and_every_dbt_test_is_a_passing_asset_check(fixture_marts):
    results = fixture_marts.results
    for result in results.values():
        assert result.success
        evaluations = result.get_asset_check_evaluations()
        assert evaluations and all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]
    materialized = {m.asset_key.path[-1] for r in results.values() for m in r.get_asset_materialization_events()}
    assert materialized == {
        "active_users_daily",
        "account_usage_daily",
        "feature_adoption_daily",
        "nps_daily",
        "retention_weekly",
        "account_health",
    }
    partitions = {m.partition for m in results["daily"].get_asset_materialization_events()}
    assert len(partitions) == 31 and min(partitions) == "2026-03-01" and max(partitions) == "2026-03-31"
    if fixture_marts.postgres is not None:
        # dlt's credentials reached dbt's process only: not its logs, the run's events, or a file.
        password = fixture_marts.postgres.password
        assert not any(password in str(e) for r in results.values() for e in r.all_events)
        assert files_holding(password, [DBT_PROJECT_DIR]) == []


def test_dau_wau_mau_around_the_window_edges_and_new_users(fixture_marts):
    rows = {
        r[0]: r[1:]
        for r in fixture_marts.query(
            "SELECT day, dau, wau, mau, dau_over_mau, sessions, new_users FROM aptrinsic_marts.active_users_daily"
        )
    }
    # Every day of the partition range, none after it (u1's session at 04-01 00:00 is the next day).
    assert sorted(rows) == [_day("2026-03-01") + dt.timedelta(days=n) for n in range(31)]
    assert rows[_day("2026-03-31")] == (2, 3, 4, 0.5, 3, 1)
    assert rows[_day("2026-03-30")] == (1, 3, 4, 0.25, 1, 0)
    assert rows[_day("2026-03-24")] == (1, 1, 3, pytest.approx(1 / 3), 1, 1)
    assert rows[_day("2026-03-10")] == (0, 0, 2, 0.0, 0, 0)
    assert rows[_day("2026-03-01")] == (1, 1, 1, 1.0, 1, 0)


def test_account_usage_counts_every_event_once_and_skips_idle_accounts(fixture_marts):
    rows = fixture_marts.query(
        "SELECT account_id, active_users, sessions, page_views, feature_events, custom_events, distinct_features "
        "FROM aptrinsic_marts.account_usage_daily WHERE day = DATE '2026-03-31' ORDER BY account_id",
    )
    assert rows == [("(none)", 1, 1, 0, 1, 0, 1), ("a1", 1, 2, 2, 3, 1, 2)]
    assert fixture_marts.query("SELECT count(*) FROM aptrinsic_marts.account_usage_daily WHERE account_id = 'a3'") == [
        (0,)
    ]


def test_feature_adoption_with_names_first_use_and_share_of_dau(fixture_marts):
    rows = fixture_marts.query(
        "SELECT day, feature_id, feature_name, feature_type, parent_feature_id, users, accounts, events, "
        "first_time_users, share_of_dau FROM aptrinsic_marts.feature_adoption_daily ORDER BY day, feature_id",
    )
    assert rows == [
        (_day("2026-03-25"), "feat-reports", "Reports", "FEATURE", "mod-analytics", 1, 1, 1, 1, 1.0),
        # u2 matched Export on a day without a session: a user of the feature, not an active one.
        (_day("2026-03-31"), "feat-export", "Export", "FEATURE", None, 1, 1, 1, 1, 0.0),
        (_day("2026-03-31"), "feat-reports", "Reports", "FEATURE", "mod-analytics", 2, 1, 3, 1, 1.0),
    ]


def test_nps_counts_scored_nps_answers_only_and_a_detractor_only_day_is_minus_100(fixture_marts):
    rows = fixture_marts.query(
        "SELECT day, engagement_id, engagement_name, responses, promoters, passives, detractors, nps "
        "FROM aptrinsic_marts.nps_daily ORDER BY day",
    )
    assert rows == [
        (_day("2026-03-30"), "eng-nps", "Quarterly NPS", 4, 2, 1, 1, 25.0),
        (_day("2026-03-31"), "eng-nps", "Quarterly NPS", 2, 0, 0, 2, -100.0),
    ]


def test_weekly_retention_by_first_seen_cohort(fixture_marts):
    rows = fixture_marts.query(
        "SELECT cohort_week, week_number, cohort_size, retained_users, retention_rate "
        "FROM aptrinsic_marts.retention_weekly ORDER BY 1, 2",
    )
    assert rows == [
        (_day("2026-02-09"), 2, 3, 1, pytest.approx(1 / 3)),
        (_day("2026-02-09"), 3, 3, 1, pytest.approx(1 / 3)),
        (_day("2026-02-09"), 6, 3, 1, pytest.approx(1 / 3)),
        (_day("2026-02-09"), 7, 3, 3, 1.0),
        (_day("2026-03-23"), 0, 1, 1, 1.0),
        (_day("2026-03-23"), 1, 1, 0, 0.0),
        (_day("2026-03-30"), 0, 1, 1, 1.0),
    ]


def test_account_health_including_an_account_with_no_activity(fixture_marts):
    rows = fixture_marts.query(
        "SELECT account_id, account_name, plan, custom_attributes__tier, as_of_day, active_users_7d, active_users_30d, "
        "active_days_30d, feature_breadth_30d, usage_trend, nps_90d, last_seen "
        "FROM aptrinsic_marts.account_health ORDER BY account_id",
    )
    as_of = _day("2026-04-01")
    utc = dt.UTC
    assert [r[:9] for r in rows] == [
        ("a1", "Acme", "pro", "gold", as_of, 3, 3, 3, 2),
        ("a2", "Globex", "free", None, as_of, 0, 2, 2, 1),
        ("a3", "Initech", "free", "silver", as_of, 0, 0, 0, 0),
    ]
    trend, nps, last_seen = zip(*[r[9:] for r in rows], strict=True)
    assert trend == (1.0, None, None)  # 4 sessions in 03-03..04-01 against 2 in the 30 days before
    assert nps == (50.0, -50.0, None)
    assert [s and s.astimezone(utc) for s in last_seen] == [
        dt.datetime(2026, 4, 1, tzinfo=utc),
        dt.datetime(2026, 3, 25, 8, tzinfo=utc),
        None,
    ]


def test_a_partition_rebuilds_exactly_its_days(fixture_marts, tmp_path: Path):
    warehouse = fixture_marts.copy(tmp_path)
    before = warehouse.query(
        "SELECT * FROM aptrinsic_marts.active_users_daily WHERE day < DATE '2026-03-31' ORDER BY day"
    )
    # The API no longer has u3's account-less session and feature match of 03-31 (a drift repair).
    _execute(warehouse, "DELETE FROM aptrinsic_data.events_session WHERE event_id = 's8'")
    _execute(warehouse, "DELETE FROM aptrinsic_data.events_feature_match WHERE event_id = 'f4'")
    daily, _ = build_marts(dbt_project(), daily_partitions())
    result = _materialize([daily], warehouse, partition_key="2026-03-31")
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    # u3 leaves the day's DAU but stays in its WAU and MAU through the session of 03-25.
    assert warehouse.query(
        "SELECT dau, wau, mau, sessions FROM aptrinsic_marts.active_users_daily WHERE day = DATE '2026-03-31'"
    ) == [(1, 3, 4, 2)]
    assert (
        warehouse.query("SELECT * FROM aptrinsic_marts.active_users_daily WHERE day < DATE '2026-03-31' ORDER BY day")
        == before
    )
    # The account-less row of that day is gone, not left behind by a key-based merge.
    assert warehouse.query(
        "SELECT account_id FROM aptrinsic_marts.account_usage_daily WHERE day = DATE '2026-03-31' ORDER BY 1"
    ) == [("a1",)]


def _requested(result: dg.EvaluateAutomationConditionsResult) -> dict[str, object]:
    requested: dict[str, object] = {}
    for evaluation in result.results:
        subset = evaluation.true_subset
        if subset.size:
            keys = subset.get_internal_subset_value().get_partition_keys() if subset.is_partitioned else None
            requested[evaluation.key.path[-1]] = sorted(keys) if keys is not None else "whole"
    return requested


def test_a_reloaded_event_partition_makes_the_marts_that_read_it_update_after_the_checks(
    workspace_defs: dg.Definitions,
):
    defs = workspace_defs
    instance = dg.DagsterInstance.ephemeral()
    marts = dg.AssetSelection.groups("aptrinsic_marts")
    raw = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "aptrinsic"]

    def tick(cursor=None) -> dg.EvaluateAutomationConditionsResult:
        return dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=marts, cursor=cursor)

    result = tick()
    assert _requested(result) == {}  # nothing loaded, nothing checked
    instance.report_runless_asset_event(
        dg.AssetMaterialization(dg.AssetKey(["aptrinsic", "events_session"]), partition="2026-03-10")
    )
    result = tick(result.cursor)
    assert _requested(result) == {}  # waits for the raw tables' blocking checks
    for key in raw:
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(asset_key=key, check_name="rows_match_api", passed=True)
        )
    result = tick(result.cursor)
    thirty_days = [(dt.date(2026, 3, 10) + dt.timedelta(days=n)).isoformat() for n in range(30)]
    assert _requested(result) == {
        "active_users_daily": thirty_days,  # MAU of 03-10 .. 04-08 reads 03-10
        "account_usage_daily": ["2026-03-10"],
        "feature_adoption_daily": ["2026-03-10"],  # its share of DAU reads sessions
        "retention_weekly": "whole",
        "account_health": "whole",
    }
    assert _requested(tick(result.cursor)) == {}  # handled: no second request


def test_a_failed_blocking_check_holds_the_marts_back_until_it_passes(workspace_defs: dg.Definitions):
    defs = workspace_defs
    instance = dg.DagsterInstance.ephemeral()
    marts = dg.AssetSelection.groups("aptrinsic_marts")
    raw = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "aptrinsic"]
    survey = dg.AssetKey(["aptrinsic", "survey_responses"])

    def tick(cursor=None) -> dg.EvaluateAutomationConditionsResult:
        return dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=marts, cursor=cursor)

    result = tick()
    for table in ("survey_responses", "events_session"):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(dg.AssetKey(["aptrinsic", table]), partition="2026-03-10")
        )
    for key in raw:
        passed = key != survey
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(asset_key=key, check_name="rows_match_api", passed=passed)
        )
    result = tick(result.cursor)
    # What reads survey_responses waits; what reads only sessions goes ahead.
    requested = _requested(result)
    assert "nps_daily" not in requested and "account_health" not in requested
    assert requested["account_usage_daily"] == ["2026-03-10"] and requested["retention_weekly"] == "whole"
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(asset_key=survey, check_name="rows_match_api", passed=True)
    )
    assert _requested(tick(result.cursor)) == {"nps_daily": ["2026-03-10"], "account_health": "whole"}


def test_sandbox_to_marts_end_to_end_through_the_jobs(defs: dg.Definitions, marts_defs: dg.Definitions, deploy):
    deployment = deploy(users=300, accounts=20, events_per_day=200)
    range_tags = {
        "dagster/asset_partition_range_start": "2026-03-12",
        "dagster/asset_partition_range_end": "2026-03-13",
    }
    results = [
        defs.resolve_job_def("aptrinsic_snapshots").execute_in_process(instance=deployment.instance),
        defs.resolve_job_def("aptrinsic_daily_events").execute_in_process(
            instance=deployment.instance, tags=range_tags
        ),
        marts_defs.resolve_job_def("aptrinsic_marts").execute_in_process(instance=deployment.instance, tags=range_tags),
    ]
    assert all(r.success for r in results)
    dbt_checks = results[2].get_asset_check_evaluations()
    assert len(dbt_checks) == len(
        marts_defs.resolve_job_def("aptrinsic_marts").asset_layer.asset_graph.asset_check_keys
    )
    assert len(dbt_checks) >= 28 and all(e.passed for e in dbt_checks)
    path = deployment.duckdb_path
    expected = query(
        path,
        "SELECT cast(date AS DATE), count(DISTINCT identify_id), count(*) FROM aptrinsic_data.events_session "
        "GROUP BY 1 ORDER BY 1",
    )
    assert query(path, "SELECT day, dau, sessions FROM aptrinsic_marts.active_users_daily ORDER BY day") == expected
    assert query(path, "SELECT count(*) FROM aptrinsic_marts.account_health") == query(
        path, "SELECT count(*) FROM aptrinsic_data.accounts"
    )
    for mart in ("account_usage_daily", "feature_adoption_daily", "nps_daily", "retention_weekly"):
        assert query(path, f"SELECT count(*) FROM aptrinsic_marts.{mart}")[0][0] > 0, mart


def test_marts_build_before_an_event_type_has_had_its_first_event(
    defs: dg.Definitions, marts_defs: dg.Definitions, deploy
):
    # A fresh warehouse whose first loaded day has no sessions, custom events or survey answers: those
    # tables hold only event_id, date and the loader's columns. The marts build, with nothing from them.
    deployment = deploy(users=100, accounts=10, events_per_day=40, event_weights=dict.fromkeys(NO_EVENTS, 0.0))
    tags = {"dagster/partition": "2026-03-10"}
    results = [
        defs.resolve_job_def("aptrinsic_snapshots").execute_in_process(instance=deployment.instance),
        defs.resolve_job_def("aptrinsic_daily_events").execute_in_process(instance=deployment.instance, tags=tags),
        marts_defs.resolve_job_def("aptrinsic_marts").execute_in_process(
            instance=deployment.instance, tags=tags, raise_on_error=False
        ),
    ]
    assert all(r.success for r in results), [e.message for e in results[2].all_events if e.is_failure]
    assert all(e.passed for e in results[2].get_asset_check_evaluations())
    path = deployment.duckdb_path
    columns = {c for (c,) in query(path, "SELECT column_name FROM (DESCRIBE aptrinsic_data.events_session)")}
    assert "identify_id" not in columns  # what the staging model reads as NULL
    [(sessions, page_views)] = query(
        path, "SELECT sum(sessions), sum(page_views) FROM aptrinsic_marts.account_usage_daily"
    )
    assert sessions == 0 and page_views == row_count(path, "events_page_view") > 0
    assert query(path, "SELECT coalesce(sum(sessions), 0) FROM aptrinsic_marts.active_users_daily") == [(0,)]


NO_EVENTS = ("session", "custom", "survey")
