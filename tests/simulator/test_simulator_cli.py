"""`gridtokenx simulate` argument handling (no gateway needed for refusals)."""

from __future__ import annotations

from typer.testing import CliRunner

from gridtokenx.cli import app


def test_bad_combinations_are_refused_with_exit_2(tmp_path) -> None:
    runner = CliRunner()
    for args in (
        ["--transport", "mqtt", "--compat", "a1"],
        ["--transport", "carrier-pigeon"],
        ["--scenario", "replay", "--compat", "a2"],
        ["--scenario", "nonsense"],
    ):
        result = runner.invoke(app, ["simulate", "--fleet-file", str(tmp_path / "f.db"), *args])
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.output


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    for option in (
        "--meters",
        "--interval",
        "--transport",
        "--gateway",
        "--scenario",
        "--speed",
        "--duration",
    ):
        assert option in result.output
