"""The host AOT cache's size: a host that loads many guests from keys without native-code trust (each version a new
entry of machine code, megabytes for a JavaScript or Python component) kept every entry forever, until the disk
filled. The entries together now take at most $NGIXI_AOT_CACHE_MAX_MB; storing one removes the least recently
used first, and temporary files a killed store left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ngixi_runtime.engines.base import EngineId
from ngixi_runtime.loading.aot_cache import (
    LIMIT_VARIABLE,
    AotCache,
    CacheKey,
    CacheUnavailable,
    EntryNotKept,
)
from ngixi_runtime.loading.aot_cache_dir import DEFAULT_LIMIT_MB, cache_limit
from ngixi_runtime.loading.isolated import child_environment
from tests.run.unit.test_native_code import cache_entries

AN_HOUR_AGO = time.time() - 3600


def _key(number: int) -> CacheKey:
    engine = EngineId("wasmer", "2.1.1", "1.1.0", "cranelift")
    return CacheKey(f"{number:064x}", "RWQ", "module", engine, "fuel metering False", "x86_64-unknown-linux-gnu", ())


def _cache(directory: Path, limit: int) -> AotCache:
    return AotCache.opened(directory)._replace(limit=limit)


def _stored(cache: AotCache, number: int, *, used: float) -> Path:
    cache.store(_key(number), bytes(400))
    path = cache.entry_path(_key(number))
    os.utime(path, (used, used))
    return path


def test_storing_removes_the_least_recently_used_entries_until_all_fit(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "aot", limit=1 << 20)
    first = _stored(cache, 1, used=AN_HOUR_AGO + 1)
    cache = cache._replace(limit=3 * first.stat().st_size)  # room for three entries (their records' size alike)
    second, third = (_stored(cache, n, used=AN_HOUR_AGO + n) for n in (2, 3))
    assert cache.load(_key(1)) == bytes(400)  # a load makes the first the most recently used
    fourth = _stored(cache, 4, used=time.time())
    assert cache_entries(cache.directory) == sorted([first, third, fourth])
    assert not second.exists()


def test_code_larger_than_the_whole_cache_is_not_kept_and_nothing_is_removed_for_it(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "aot", limit=1000)
    kept = _stored(cache, 1, used=AN_HOUR_AGO)
    with pytest.raises(EntryNotKept, match=rf"is more than the cache may hold, 0.0 MiB \(\${LIMIT_VARIABLE}\)"):
        cache.store(_key(2), bytes(1000))
    assert cache_entries(cache.directory) == [kept]
    assert [path.name for path in cache.directory.iterdir()] == [kept.name]  # no temporary file left either


def test_a_store_removes_temporary_files_abandoned_by_killed_stores_and_nothing_else(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "aot", limit=1 << 20)
    name = _key(9).name
    abandoned = cache.directory / f".{name}.aot.x1y2z3q4.tmp"
    writing = cache.directory / f".{name}.aot.a1b2c3d4.tmp"  # another process's store, still writing
    others = [cache.directory / "notes.txt", cache.directory / ".notes.tmp", cache.directory / f"{name[:-1]}.aot"]
    for path in [abandoned, writing, *others]:
        path.write_bytes(b"x")
        os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))
    os.utime(writing)
    kept = _stored(cache, 1, used=time.time())
    assert sorted(cache.directory.iterdir()) == sorted([kept, writing, *others])


@pytest.mark.parametrize(
    ("value", "limit"), [(None, DEFAULT_LIMIT_MB << 20), ("", DEFAULT_LIMIT_MB << 20), (" 16 ", 16 << 20), ("0", 0)]
)
def test_the_limit_variable(value: str | None, limit: int) -> None:
    assert cache_limit({} if value is None else {LIMIT_VARIABLE: value}) == limit


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "16M", "\u0661\u0662", "1e3"])
def test_a_limit_that_is_not_a_whole_number_of_mib_leaves_the_cache_unused_and_says_why(value: str) -> None:
    with pytest.raises(CacheUnavailable, match=rf"^\${LIMIT_VARIABLE}: .* is not a whole number of MiB; set it"):
        cache_limit({LIMIT_VARIABLE: value})


def test_an_isolated_tenant_keeps_to_the_limit_of_its_host() -> None:
    assert child_environment(environ={LIMIT_VARIABLE: "7", "HOME": "/nowhere"})[LIMIT_VARIABLE] == "7"
    assert LIMIT_VARIABLE not in child_environment(environ={"HOME": "/nowhere"})
