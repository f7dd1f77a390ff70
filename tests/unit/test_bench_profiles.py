"""The benchmark's workload profiles and the arithmetic of its figures (benchmarks/profiles.py, results.py,
report.py): no cluster, no operator."""

from __future__ import annotations

import os

import pytest
from benchmarks.__main__ import main
from benchmarks.procstat import usage
from benchmarks.profiles import MIB, PROFILES, REALISTIC, STRESS, bytes_per_object, select, slope
from benchmarks.report import SYNC_COLUMNS, document, memory_line, sync_row
from benchmarks.results import Result, Settings
from benchmarks.rotation import forced_objects
from benchmarks.workload import items


def test_both_profiles_by_default_realistic_first() -> None:
    assert [p.name for p in select(None)] == ["realistic", "stress"]
    assert [p.name for p in select(["stress"])] == ["stress"]
    assert [p.name for p in select(["stress", "realistic", "stress"])] == ["stress", "realistic"]


def test_an_unknown_profile_is_named() -> None:
    with pytest.raises(ValueError, match=r"--profile-name: unknown profile .fast. \(known: realistic"):
        select(["fast"])


def test_the_cli_flag_does_not_clash_with_cprofile(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--profile-name", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_profiles_shape() -> None:
    assert (STRESS.max_age, STRESS.keep_alive, STRESS.forced) == (2, False, False)
    assert REALISTIC.max_age >= 3600  # providers' real lifetimes: hours
    assert (REALISTIC.keep_alive, REALISTIC.forced) == (True, True)
    assert set(PROFILES) == {"realistic", "stress"}


def test_rotation_targets() -> None:
    assert STRESS.rotation_target(3.5) == pytest.approx(3.5 + 2 + 1)
    assert STRESS.rotation_target(None) is None
    assert REALISTIC.rotation_target(3.5, forced_after=0.25) == pytest.approx(0.25 + 3.5 + 1)
    assert REALISTIC.rotation_target(3.5) is None  # never forced: no target to hold it to
    result = Result(1000, urls=100, static=100, profile=REALISTIC, floor_publish=0.5, rotation_forced=0.1)
    assert result.rotation_target == pytest.approx(1.6)


def test_expected_steady_fetches() -> None:
    assert STRESS.expected_per_period(100, 2) == 100
    assert REALISTIC.expected_per_period(100, 2) == pytest.approx(100 * 2 / 21600)


def test_memory_per_object_and_slope() -> None:
    assert bytes_per_object(100.0, 110.0, 1000) == pytest.approx(10 * MIB / 1000)
    assert bytes_per_object(100.0, 110.0, 0) is None
    # 1,000 objects add 12 MiB, 10,000 add 57 MiB: each further object 45 MiB / 9,000
    assert slope([(10000, 57.0), (100, 3.0), (1000, 12.0)]) == pytest.approx(45 * MIB / 9000)
    assert slope([(1000, 12.0)]) is None


def test_cpu_per_object_includes_the_fetch_threads() -> None:
    result = Result(1000, urls=100, static=100, initial_cpu=8.0)
    result.initial_main_cpu, result.initial_api_cpu, result.initial_fetch_cpu = 4.0, 2.5, 1.0
    assert result.cpu_ms_per_object == pytest.approx(8.0)
    assert result.cpu_split_ms == pytest.approx((4.0, 2.5, 1.0))
    row = dict(zip(SYNC_COLUMNS, sync_row(result), strict=True))
    assert (row["ms/object"], row["ms/object main/API/fetch"]) == ("8.0", "4.0/2.5/1.0")


def test_memory_line() -> None:
    results = [
        Result(n, urls=100, static=0, rss_before_mib=80.0, rss_after_mib=80.0 + grown)
        for n, grown in ((100, 1.0), (1000, 12.0), (10000, 57.0))
    ]
    line = memory_line(results)
    assert line.startswith("Memory per tracked JwtSecret (VmRSS added by the sync / N, bytes): N=100 10486,")
    assert line.endswith(f"slope between N=1000 and N=10000: {45 * MIB / 9000:.0f} bytes per object.")


def test_document_sections_per_backend_and_profile() -> None:
    previous = (
        "<!-- summary -->kept<!-- /summary -->\n"
        "<!-- bench:real -->old real<!-- /bench:real -->\n"
        "<!-- bench:emulator -->old emulator<!-- /bench:emulator -->\n"
    )
    result = Result(50, urls=45, static=5, profile=REALISTIC, rss_before_mib=80, rss_after_mib=81)
    text = document([(Settings(backend="real", profile=REALISTIC), [result])], previous)
    assert "<!-- bench:real-realistic -->" in text
    assert "old real" not in text  # the single-profile section of the backend re-run is dropped
    assert "old emulator" in text  # the other backend's is kept
    assert "kept" in text
    again = document([(Settings(backend="real", profile=STRESS), [result])], text)
    assert again.index("<!-- bench:real-realistic -->") < again.index("<!-- bench:real-stress -->")


def test_one_forced_object_per_url_of_the_rotating_provider() -> None:
    urls = [f"https://127.0.0.1:{port}/.well-known/jwks.json" for port in (1, 2, 3, 4)]
    todo = items(1000, urls)
    forced = forced_objects(todo, 0)
    affected = [i for i in todo if i.provider == 0]
    assert len(forced) == len({i.url for i in affected}) == 25  # a quarter of the 100 URLs
    assert {i.url for i in forced} == {i.url for i in affected}
    assert len(affected) == 225  # 9 JwtSecrets per URL: the URL's source refreshes the other 8 too


def test_resident_memory_is_read_with_the_peak() -> None:
    now = usage(os.getpid())
    assert 0 < now.rss_mib <= now.peak_rss_mib
