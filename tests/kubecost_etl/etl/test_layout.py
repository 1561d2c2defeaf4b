import pytest
from kubecost_etl.etl.layout import UnsafePathError, check_relative_path, coverage, parse_set_file

DAY, HOUR = 86400, 3600
D0 = 1690761600  # 2023-07-31T00:00:00Z


def test_parse_set_file():
    f = parse_set_file(f"bingen/allocations/1d/{D0}-{D0 + DAY}")
    assert (f.pipeline, f.resolution, f.start, f.end) == ("allocations", "1d", D0, D0 + DAY)
    assert parse_set_file(f"bingen/allocations/1d/{D0}-{D0 + HOUR}") is None  # wrong length
    assert parse_set_file(f"bingen/assets/1h/{D0 + 5}-{D0 + 5 + HOUR}") is None  # not aligned
    assert parse_set_file("bingen/assets/1h/readme") is None
    assert (
        parse_set_file(f"bingen/cloudcosts/1w/{D0}-{D0 + 7 * DAY}").pipeline == "cloudcosts"
    )  # unknown res kept


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "../x", "bingen/../../x", "bingen//x", "-rf", "a/./b", "", "a/-x"]
)
def test_unsafe_paths_refused(bad):
    with pytest.raises(UnsafePathError):
        check_relative_path(bad)


def test_coverage_windows_gaps_and_short_hourly_store():
    days = [f"bingen/assets/1d/{D0 + i * DAY}-{D0 + (i + 1) * DAY}" for i in (0, 1, 2, 5, 6)]
    hours = [f"bingen/assets/1h/{D0 + i * HOUR}-{D0 + (i + 1) * HOUR}" for i in range(24)]
    report = coverage(days + hours)
    daily = report["assets/1d"]
    assert daily.files == 5
    assert daily.windows == [(D0, D0 + 3 * DAY), (D0 + 5 * DAY, D0 + 7 * DAY)]
    assert daily.gaps == [(D0 + 3 * DAY, D0 + 5 * DAY)]
    assert "1 gap(s) in coverage" in daily.warnings
    hourly = report["assets/1h"]
    assert any("less than 49h" in w for w in hourly.warnings)
    assert report["allocations/1d"].warnings == ["store is empty"]
    assert daily.as_dict()["windows"][0] == ["2023-07-31T00:00:00Z", "2023-08-03T00:00:00Z"]
