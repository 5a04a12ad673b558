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


def test_serve_reports_a_missing_model_file_before_starting(tmp_path):
    config = tmp_path / "tiers.yaml"
    config.write_text("tiers:\n  - {name: d, location: device, backend: llama_cpp, model_path: nowhere.gguf}\n")
    result = runner.invoke(app, ["serve", "-c", str(config)])
    assert result.exit_code == 2
    assert "model_path" in result.output and "does not exist" in result.output
    assert "Traceback" not in result.output
