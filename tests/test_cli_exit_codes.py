"""The exit-code contract (README, "Exit codes"): every usage error, unknown name, unreadable or binary input file
and unusable output folder exits 2 with exactly one line on stderr and no traceback; a study folder is locked
while a study runs in it; text from data is printed as it is, never parsed as rich markup.

The table runs the CLI in-process (cli.main with sys.argv patched); two real subprocesses prove the exit code of
the installed entry point."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr_safety import cli
from rlvr_safety.study.lock import LOCK_NAME, StudyLock

ENTRY_POINT = Path(sys.executable).with_name("rlvr-safety")


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["rlvr-safety", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


def assert_one_line_exit_2(code: int, out: str, err: str, needle: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out and "rerun with --debug" not in err, err
    assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    """Placeholders used by the table: fresh out folder, a text file, a binary file, a folder, an unusable folder."""
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "folder").mkdir()
    (tmp_path / "labels.csv").write_text("prompt,completion,final_label\nhi,hello,1_full_compliance\n")
    bad_data = tmp_path / "bindata" / "strongreject"
    bad_data.mkdir(parents=True)
    (bad_data / "strongreject_dataset.csv").write_bytes(b"category,source,forbidden_prompt\n\xff\xfe\x00bad\n")
    if os.geteuid() == 0:  # root writes anywhere a permission bit forbids; nobody can create folders in /proc
        readonly = Path("/proc/rlvr-safety-test-out")
    else:
        readonly = tmp_path / "readonly"
        readonly.mkdir()
        readonly.chmod(0o500)
    return {"{out}": str(tmp_path / "out"), "{file}": str(tmp_path / "notes.txt"),
            "{bin}": str(tmp_path / "blob.bin"), "{dir}": str(tmp_path / "folder"),
            "{csv}": str(tmp_path / "labels.csv"), "{ro}": str(readonly / "sub"),
            "{bindata}": str(tmp_path / "bindata")}


EVAL = ["eval", "--model", "m", "--benchmark", "gsm8k"]
AGREE = ["judges", "agreement", "--judge", "keyword"]
FORECAST = ["forecast", "--model", "m", "--task", "arithmetic", "--beta", "0.1"]
CERTIFY = ["certify", "--policy", "a", "--reference", "b"]

# (arguments, a fragment the one line must contain)
TABLE: list[tuple[list[str], str]] = [
    # unknown commands and options
    (["bogus"], "No such command 'bogus'"),
    (["data", "bogus"], "No such command 'bogus'"),
    (["judges", "bogus"], "No such command 'bogus'"),
    (["--nope"], "No such option: --nope"),
    ([*EVAL, "--out", "{out}", "--nope"], "No such option: --nope"),
    (["eval", "--debug", "--model", "m", "--out", "{out}"], "No such option: --debug"),
    # missing options and arguments, options missing their value, extra arguments
    (["eval"], "Missing option '--out'"),
    (["eval", "--out", "{out}"], "pass --model (or --inspect-log"),
    (["eval", "--inspect-log", "{file}", "--out", "{out}"], "not a readable inspect eval log"),
    (["eval", "--model", "m"], "Missing option '--out'"),
    (["eval", "--out", "{out}", "--model"], "requires an argument"),
    (["train", "--out", "{out}"], "Missing option '--recipe'"),
    (["certify", "--policy", "a", "--out", "{out}"], "Missing option '--reference'"),
    (["forecast", "--model", "m", "--beta", "1", "--out", "{out}"], "Missing option '--task'"),
    (AGREE, "Missing option '--labels-file'"),
    (["data", "show"], "Missing argument"),
    (["report"], "Missing argument"),
    (["data", "show", "gsm8k", "extra"], "unexpected extra argument"),
    (["data", "list", "extra"], "unexpected extra argument"),
    (["models", "a", "b"], "unexpected extra argument"),
    (["study", "--preset", "demo", "--out", "{out}", "--resume=yes"], "does not take a value"),
    # bad numbers
    (["data", "show", "gsm8k", "--limit", "abc"], "'--limit'"),
    (["data", "show", "gsm8k", "--limit", "-1"], "'--limit'"),
    ([*EVAL, "--out", "{out}", "--limit", "1.5"], "'--limit'"),
    ([*EVAL, "--out", "{out}", "--batch-size", "0"], "'--batch-size'"),
    ([*EVAL, "--out", "{out}", "--max-new-tokens", "many"], "'--max-new-tokens'"),
    ([*FORECAST[:-1], "abc", "--out", "{out}"], "'--beta'"),
    ([*FORECAST, "--k", "0", "--out", "{out}"], "'--k'"),
    ([*FORECAST[:-1], "0", "--out", "{out}"], "invalid value for '--beta': Input should be greater than 0"),
    ([*CERTIFY, "--seed", "-3", "--out", "{out}"], "'--seed'"),
    (["study", "--preset", "demo", "--out", "{out}", "--ray-num-cpus", "0"], "'--ray-num-cpus'"),
    (["report", "{dir}", "--margin", "wide"], "'--margin'"),
    # unknown names
    ([*EVAL, "--out", "{out}", "--backend", "bogus", "--limit", "0"], "unknown generation backend 'bogus'"),
    (["eval", "--model", "m", "--benchmark", "nope", "--out", "{out}"], "nope"),
    (["eval", "--model", "m", "--benchmark", "xstest", "--limit", "0", "--judge", "nosuch", "--out", "{out}"],
     "nosuch"),
    (["study", "--preset", "demo", "--backend", "bogus", "--out", "{out}"], "unknown backend 'bogus'"),
    (["study", "--preset", "nope", "--out", "{out}"], "nope"),
    (["train", "--recipe", "nope", "--out", "{out}"], "nope"),
    ([*AGREE[:-1], "nosuch", "--labels-file", "{csv}"], "nosuch"),
    (["data", "show", "nope"], "nope"),
    # unreadable, binary or wrong-kind input files
    (["train", "--recipe", "guard", "--config", "{bin}", "--out", "{out}"], "not UTF-8 text"),
    (["train", "--recipe", "guard", "--config", "{dir}", "--out", "{out}"], "is a folder"),
    (["train", "--recipe", "guard", "--config", "{file}", "--out", "{out}"], "mapping"),
    (["study", "--config", "{bin}", "--out", "{out}"], "not UTF-8 text"),
    (["study", "--config", "{dir}", "--out", "{out}"], "is a folder"),
    ([*AGREE, "--labels-file", "{bin}"], "not UTF-8 text"),
    ([*AGREE, "--labels-file", "{dir}"], "is a folder"),
    ([*AGREE, "--labels-file", "{out}.csv"], "not found"),
    (["data", "show", "strongreject", "--data-dir", "{bindata}"], "can't decode"),
    (["data", "show", "gsm8k", "--data-dir", "{file}"], "data folder not found"),
    (["report", "{file}"], "summary.json"),
    # output folders that are files, under a file, or not writable
    ([*EVAL, "--out", "{file}"], "is a file, not a folder"),
    ([*EVAL, "--out", "{file}/sub"], "not a writable folder"),
    ([*EVAL, "--out", "{ro}"], "not a writable folder"),
    (["train", "--recipe", "guard", "--out", "{file}"], "is a file, not a folder"),
    (["train", "--recipe", "guard", "--out", "{ro}"], "not a writable folder"),
    ([*FORECAST, "--out", "{file}"], "is a file, not a folder"),
    ([*CERTIFY, "--out", "{file}"], "is a file, not a folder"),
    ([*CERTIFY, "--out", "{ro}"], "not a writable folder"),
    (["study", "--preset", "demo", "--out", "{file}"], "is a file, not a folder"),
    (["study", "--preset", "demo", "--out", "{ro}"], "not a writable folder"),
    ([*AGREE, "--labels-file", "{csv}", "--out", "{dir}"], "is a folder"),
    ([*AGREE, "--labels-file", "{csv}", "--out", "{file}/x.json"], "is a file, not a folder"),
    ([*AGREE, "--labels-file", "{csv}", "--out", "{ro}/x.json"], "not a writable folder"),
]


def test_the_table_has_forty_or_more_cases() -> None:
    assert len(TABLE) >= 40


@pytest.mark.parametrize(("args", "needle"), TABLE, ids=[" ".join(a) for a, _ in TABLE])
def test_bad_input_exits_2_with_one_line(monkeypatch, capsys, data_dir, paths, args, needle) -> None:
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))
    resolved = []
    for arg in args:
        for key, value in paths.items():
            arg = arg.replace(key, value)
        resolved.append(arg)
    code, out, err = run_cli(monkeypatch, capsys, *resolved)
    assert_one_line_exit_2(code, out, err, needle)


def test_no_arguments_prints_help_and_exits_2(monkeypatch, capsys) -> None:
    code, out, err = run_cli(monkeypatch, capsys)
    assert code == 2 and "Usage" in out and "eval" in out
    assert "NoArgsIsHelpError" not in out + err and "Traceback" not in out + err
    code, out, _ = run_cli(monkeypatch, capsys, "--help")
    assert code == 0 and "Usage" in out


def test_data_text_is_never_parsed_as_markup(monkeypatch, capsys, tmp_path) -> None:
    folder = tmp_path / "data" / "strongreject"
    folder.mkdir(parents=True)
    prompt = "Explain [bold]this[/bold] and [red]that[/] plus [link=http://x]y[/link]"
    (folder / "strongreject_dataset.csv").write_text(
        f'category,source,forbidden_prompt\n"[cat]",s,"{prompt}"\n')
    code, out, err = run_cli(monkeypatch, capsys, "data", "show", "strongreject", "--data-dir", str(tmp_path / "data"))
    assert code == 0, err
    assert prompt in out and "[harmful] [cat]" in out
    assert not cli.console._markup and not cli.err_console._markup  # every print through them is literal


# --- the study lock ------------------------------------------------------------------------------------------------
def test_a_second_study_in_a_locked_folder_exits_2_naming_the_holder(monkeypatch, capsys, tmp_path) -> None:
    folder = tmp_path / "study"
    with StudyLock(folder):
        code, out, err = run_cli(monkeypatch, capsys, "study", "--preset", "demo", "--out", str(folder), "--resume")
        assert_one_line_exit_2(code, out, err, f"study folder {folder} is in use by pid {os.getpid()} on host "
                                               f"{socket.gethostname()} since ")
    assert (folder / LOCK_NAME).read_text() == ""  # released and emptied
    with StudyLock(folder):  # free again
        assert str(os.getpid()) in (folder / LOCK_NAME).read_text()


def test_the_lock_dies_with_its_holder(tmp_path) -> None:
    lock = StudyLock(tmp_path)
    lock.acquire()
    assert lock._fd is not None
    os.close(lock._fd)  # what the OS does when the holding process is killed: no unlock, no cleanup
    lock._fd = None
    with StudyLock(tmp_path):  # a resume right after a kill is not blocked by a stale lock
        pass


def test_a_forked_child_does_not_inherit_the_lock(tmp_path) -> None:
    with StudyLock(tmp_path) as lock:
        fd = lock._fd
        assert fd is not None
        pid = os.fork()
        if pid == 0:  # child: the inherited descriptor must already be closed
            try:
                os.fstat(fd)
            except OSError:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        with pytest.raises(cli.UserError, match=f"in use by pid {os.getpid()}"):  # the parent still holds it
            StudyLock(tmp_path).acquire()


def _entry_point(*args: str) -> subprocess.CompletedProcess[str]:
    assert ENTRY_POINT.exists(), f"installed entry point missing: {ENTRY_POINT}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(ENTRY_POINT), *args], capture_output=True, text=True, timeout=120, env=env)


def test_installed_entry_point_exit_code_for_a_usage_error() -> None:
    result = _entry_point("nosuchcommand")
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: No such command 'nosuchcommand'. (see rlvr-safety --help)")


def test_installed_entry_point_refuses_a_locked_study_folder(tmp_path) -> None:
    folder = tmp_path / "study"
    with StudyLock(folder):
        result = _entry_point("study", "--preset", "demo", "--out", str(folder), "--resume")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and f"in use by pid {os.getpid()}" in result.stderr
