from typer.testing import CliRunner

from tierwise.cli import app

runner = CliRunner()


def test_serve_rejects_a_bad_config_with_the_key_named(tmp_path):
    config = tmp_path / "tiers.yaml"
    config.write_text("tiers:\n  - {name: e, location: edge, backend: openai, base_url: 'http://x/v1', model: m, "
                      "colour: red}\n")
    result = runner.invoke(app, ["serve", "-c", str(config)])
    assert result.exit_code == 2
    assert "tiers.0.openai.colour: unknown key" in result.output


def test_help_lists_serve():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "serve" in result.output
