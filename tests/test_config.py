"""Settings: defaults, converters, and refusing bad values at start-up with a clear line."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tablestream import ConfigError, create_app
from tablestream.config import SETTINGS, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_row_is_a_settings_field_and_back():
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert fields == {s.attr for s in SETTINGS}


def test_defaults_apply_when_the_environment_says_nothing():
    settings = Settings.from_env({})
    assert settings.chunk_bytes == 32768
    assert settings.synthetic_rows == 10_000_000
    assert settings.db == "data/demo.sqlite3"
    assert settings.port == 8080


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TABLESTREAM_CHUNK_BYTES": "abc"}, "TABLESTREAM_CHUNK_BYTES='abc' is not an integer"),
        ({"TABLESTREAM_CHUNK_BYTES": "10"}, "between 1024 and 4194304"),
        ({"TABLESTREAM_PORT": "70000"}, "TABLESTREAM_PORT='70000' is out of range"),
        ({"TABLESTREAM_MAX_ROWS": "-5"}, "TABLESTREAM_MAX_ROWS='-5' is out of range"),
        ({"TABLESTREAM_CSV": "justapath.csv"}, "is not NAME=PATH"),
        ({"TABLESTREAM_CSV": "a/b=x.csv"}, "not letters, digits"),
        ({"TABLESTREAM_LOG_LEVEL": "LOUD"}, "TABLESTREAM_LOG_LEVEL='LOUD' is not a level"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_what_is_allowed(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_a_missing_sqlite_file_stops_the_app_factory_with_a_hint(tmp_path):
    missing = tmp_path / "nope.sqlite3"
    with pytest.raises(ConfigError, match="does not exist; create it with `tablestream demo-db"):
        create_app({"db": str(missing)})


def test_a_missing_csv_file_stops_the_app_factory(tmp_path):
    with pytest.raises(ConfigError, match="which is not a file"):
        create_app({"db": "", "csv": f"t={tmp_path / 'missing.csv'}"})


def test_a_csv_file_whose_header_names_no_columns_stops_the_app_factory(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n1,2\n")
    with pytest.raises(ConfigError, match="names no columns"):
        create_app({"db": "", "csv": f"blank={path}"})


def test_two_sources_serving_one_name_are_refused(tmp_path):
    path = tmp_path / "synthetic.csv"
    path.write_text("a\n1\n")
    with pytest.raises(ConfigError, match="served by both the synthetic and the csv source"):
        create_app({"db": "", "csv": f"synthetic={path}"})


def test_unknown_setting_names_are_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.from_mapping({"chunk_size": "1"})


def test_serve_refuses_to_start_on_a_bad_variable_with_one_clear_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TABLESTREAM_DB": "", "TABLESTREAM_CHUNK_BYTES": "lots"}
    done = subprocess.run(
        [sys.executable, "-m", "tablestream", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "tablestream: configuration error: TABLESTREAM_CHUNK_BYTES='lots' is not an integer; "
        "expected an integer (bytes) between 1024 and 4194304"
    ]


def test_serve_help_lists_every_setting():
    done = subprocess.run(
        [sys.executable, "-m", "tablestream", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0
    for setting in SETTINGS:
        assert setting.env in done.stdout


def test_values_that_are_not_text_are_validated_like_environment_text():
    with pytest.raises(ConfigError, match="threads=-3 is out of range"):
        Settings.from_mapping({"threads": -3})
    with pytest.raises(ConfigError, match="gzip"):
        Settings.from_mapping({"gzip": 2})


def test_settings_survive_the_trip_through_a_child_process_environment():
    settings = Settings.from_mapping(
        {"csv": "a=/x.csv,b=/y.csv", "threads": 3, "gzip": False, "write_timeout": 2.5}
    )
    assert Settings.from_env(settings.to_env()) == settings


def test_stream_slots_leave_a_reserve_of_threads_for_probes_by_default():
    assert Settings.from_mapping({"threads": "12"}).effective_stream_slots == 8
    assert Settings.from_mapping({"threads": "3"}).effective_stream_slots == 2
    assert Settings.from_mapping({"threads": "1"}).effective_stream_slots == 1
    assert (
        Settings.from_mapping({"threads": "12", "stream_slots": "10"}).effective_stream_slots == 10
    )
    with pytest.raises(ConfigError, match="TABLESTREAM_STREAM_SLOTS=13 is above"):
        Settings.from_mapping({"threads": "12", "stream_slots": "13"})


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://reader:s3cr3t@127.0.0.1/test", "host=127.0.0.1 password=s3cr3t dbname=test"],
)
def test_the_start_up_settings_line_names_every_setting_and_hides_the_dsn_password(dsn):
    line = Settings.from_mapping({"pg_dsn": dsn, "pg_tables": "public.orders", "db": ""}).to_log()
    assigned = dict(pair.split("=", 1) for pair in shlex.split(line))
    assert set(assigned) == {s.env for s in SETTINGS}
    assert assigned["TABLESTREAM_DB"] == ""
    assert "s3cr3t" not in line and "***" in line
