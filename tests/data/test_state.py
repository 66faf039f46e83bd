from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor.data.state import RACY_NS, StateMemo, stat_key


def old_file(path: Path, text: str) -> os.stat_result:
    path.write_text(text)
    past = time.time_ns() - 10 * RACY_NS
    os.utime(path, ns=(past, past))
    return path.stat()


def test_hit_only_while_inode_mtime_and_size_match(tmp_path: Path) -> None:
    f = tmp_path / "f"
    st = old_file(f, "one")
    with StateMemo(tmp_path / "state.db") as memo:
        memo.save([("f", stat_key(st), "h1")])
        assert memo.get("f", st) == "h1"
        st2 = old_file(f, "two")  # same size, new mtime
        assert memo.get("f", st2) is None


def test_recently_modified_files_are_not_memoised(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("fresh")
    with StateMemo(tmp_path / "state.db") as memo:
        memo.save([("f", stat_key(f.stat()), "h")])
        assert memo.get("f", f.stat()) is None
        memo.save([("f", stat_key(f.stat()), "h")], trusted=True)
        assert memo.get("f", f.stat()) == "h"


def test_under_returns_a_folder_only(tmp_path: Path) -> None:
    with StateMemo(tmp_path / "state.db") as memo:
        rows = [(p, (1, 1, 1), p) for p in ("d/a", "d/sub/b", "d0", "d-x/c", "e/a", "d")]
        memo.save(rows, trusted=True)
        assert sorted(memo.under("d")) == ["d/a", "d/sub/b"]


def test_memo_survives_reopen(tmp_path: Path) -> None:
    with StateMemo(tmp_path / "state.db") as memo:
        memo.save([("x", (1, 2, 3), "h")], trusted=True)
    with StateMemo(tmp_path / "state.db") as memo:
        assert memo.under("") == {}
        assert memo._db.execute("SELECT hash FROM state").fetchone() == ("h",)


def test_folder_shortcuts_live_beside_the_database_and_survive_reopen(tmp_path: Path) -> None:
    with StateMemo(tmp_path / "state.db") as memo:
        memo.save_dir("data", "digest-1", "tree-1")
        memo.mark_complete("tree-1", "gen-a")
        assert memo.get_dir("data", "digest-1") == "tree-1"
        assert memo.get_dir("data", "digest-2") is None
        assert "_db" not in memo.__dict__  # SQLite was never opened for them
    with StateMemo(tmp_path / "state.db") as memo:
        assert memo.get_dir("data", "digest-1") == "tree-1"
        assert memo.is_complete("tree-1", "gen-a")
        assert not memo.is_complete("tree-1", "gen-b") and not memo.is_complete("tree-1", None)


def test_complete_marks_of_an_older_generation_are_dropped(tmp_path: Path) -> None:
    with StateMemo(tmp_path / "state.db") as memo:
        memo.mark_complete("old", "gen-a")
        memo.mark_complete("new", "gen-b")
    with StateMemo(tmp_path / "state.db") as memo:
        assert memo.is_complete("new", "gen-b")
        assert "old" not in memo._shortcuts["complete"]


def test_a_damaged_shortcut_file_only_costs_a_lookup(tmp_path: Path) -> None:
    (tmp_path / "state.db.dirs").write_text('["not", "a mapping"')
    with StateMemo(tmp_path / "state.db") as memo:
        assert memo.get_dir("data", "digest") is None
        memo.save_dir("data", "digest", "tree")
    with StateMemo(tmp_path / "state.db") as memo:
        assert memo.get_dir("data", "digest") == "tree"


def test_a_shortcut_entry_of_the_wrong_shape_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "state.db.dirs").write_text('{"dirs": {"data": []}, "complete": {}}')
    with StateMemo(tmp_path / "state.db") as memo:
        assert memo.get_dir("data", "digest") is None
