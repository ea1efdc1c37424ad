"""The import contracts of pyproject.toml ([tool.importlinter]): layers point down, theory/ stays pure numpy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.skip("import-linter is not installed (dev extra)")
        exe = Path(found)
    return subprocess.run([str(exe), "--no-cache", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_import_contracts_are_kept() -> None:
    result = _lint_imports()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_no_contract_ignores_an_import() -> None:
    """No known cycle (or layer breach) is waived: every contract holds for every import the code makes."""
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert contracts and all(not c.get("ignore_imports") for c in contracts)


def test_a_contract_that_is_broken_is_reported(tmp_path: Path) -> None:
    """The checker really looks: a contract forbidding an import the code makes (cli -> errors) fails."""
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_package = "rlvr_safety"\n\n'
                      '[[tool.importlinter.contracts]]\nname = "cli imports nothing"\ntype = "forbidden"\n'
                      'source_modules = ["rlvr_safety.cli"]\nforbidden_modules = ["rlvr_safety.errors"]\n')
    result = _lint_imports("--config", str(config))
    assert result.returncode != 0 and "BROKEN" in result.stdout


def test_tier_lists_name_real_tests() -> None:
    """A renamed test file or test must not silently fall out of its tier (tests/conftest.py's lists)."""
    import conftest

    tests = Path(__file__).parent
    for name in conftest.INTEGRATION_FILES | conftest.SLOW_FILES | {t.split("::")[0] for t in conftest.SLOW_TESTS}:
        assert (tests / name).is_file(), name
    for entry in conftest.SLOW_TESTS:
        name, test = entry.split("::")
        assert f"def {test.split('[')[0]}(" in (tests / name).read_text(), entry


def test_every_test_has_exactly_one_tier(request: pytest.FixtureRequest) -> None:
    tiers = {m.name for m in request.node.iter_markers()} & {"unit", "integration", "slow"}
    assert tiers == {"unit"}
