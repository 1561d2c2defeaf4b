"""Which files a window selects: ranges from names, unranged files, filters, refusals."""

from __future__ import annotations

import pytest
from kubecost_etl.share.selection import Candidate, ShareRefused, file_range, select_files

D = 86400


def candidates(*paths: str) -> list[Candidate]:
    return [Candidate(p, 10, 0) for p in paths]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("bingen/allocations/1d/1690761600-1690848000", (1690761600, 1690848000)),
        ("bingen/allocations/1w/1690761600-1691366400", (1690761600, 1691366400)),
        (
            "bingen/cloudcosts/1d/cloudcost.1690761600-1690848000.bingen",
            (1690761600, 1690848000),
        ),  # OpenCost's names
        ("bingen/assets/1d/notes", None),
        ("bingen/assets/1d/200-100", None),
    ],
)
def test_ranges_come_from_names(path, expected):
    assert file_range(path) == expected


def test_a_window_selects_overlapping_files_and_leaves_out_unranged_ones():
    pool = candidates(
        "bingen/a/1d/0-86400",
        f"bingen/a/1d/{D}-{2 * D}",
        f"bingen/a/1h/{D + 3600}-{D + 7200}",
        f"bingen/a/1w/0-{7 * D}",
        "bingen/a/1d/notes",
        "other/x",
    )
    chosen = select_files(pool, (D + 1800, D + 3600), where="here")
    assert [c.path for c in chosen.files] == [
        f"bingen/a/1d/{D}-{2 * D}",
        f"bingen/a/1w/0-{7 * D}",
    ]  # [s, e) overlap
    assert chosen.days((D + 1800, D + 3600)) == 1
    assert "bingen/a/1d/notes: no range in its name, so in no window" in chosen.left_out
    everything = select_files(pool, None)
    assert everything.unranged == ("bingen/a/1d/notes",) and len(everything.files) == 5
    assert "other/x: not under bingen/" in everything.left_out
    assert everything.days(None) == 7


def test_filters_narrow_the_selection_and_unknown_values_are_refused():
    pool = candidates("bingen/allocations/1d/0-86400", "bingen/assets/1d/0-86400", "bingen/assets/1h/0-3600")
    chosen = select_files(pool, None, pipelines=["assets"], resolutions=["1d"])
    assert [c.path for c in chosen.files] == ["bingen/assets/1d/0-86400"]
    with pytest.raises(ShareRefused, match=r"here: resolutions \['1w'\] not found; there are \['1d', '1h'\]"):
        select_files(pool, None, resolutions=["1w"], where="here")
    with pytest.raises(ShareRefused, match="here: nothing to share: no file under bingen/ matches window"):
        select_files(pool, (10 * D, 11 * D), where="here")
