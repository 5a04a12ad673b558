from pathlib import Path

import pytest

from tierwise.config import LlamaCppTierConfig, OpenAITierConfig, load_settings, settings_from_dict
from tierwise.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

EDGE = {"name": "edge", "location": "edge", "backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}


def test_example_config_loads_with_typed_tiers():
    settings = load_settings(REPO / "examples" / "tiers.yaml")
    kinds = {t.name: type(t) for t in settings.tiers}
    assert kinds == {"phone": LlamaCppTierConfig, "edge": OpenAITierConfig, "cloud": OpenAITierConfig}
    cloud = settings.tier("cloud")
    assert cloud.cost.output_per_mtok == pytest.approx(2.19)
    # relative model paths are resolved against the config file's folder
    assert settings.tier("phone").model_path.parent.parent == REPO / "examples"


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"tiers\.0\.openai\.base_ulr: unknown key"):
        settings_from_dict({"tiers": [{**EDGE, "base_ulr": "x"}]})
    with pytest.raises(ConfigError, match=r"gateway\.prot: unknown key"):
        settings_from_dict({"tiers": [EDGE], "gateway": {"prot": 1}})


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"location": "moon"}, "location"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"cost": {"input_per_mtok": -1}}, "cost.input_per_mtok"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"name": "auto"}, "name"),
    ],
)
def test_bad_values_are_rejected_with_their_key(patch, where):
    with pytest.raises(ConfigError, match=rf"tiers\.0\.openai\.{where}"):
        settings_from_dict({"tiers": [{**EDGE, **patch}]})


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"llama_cpp.*openai"):
        settings_from_dict({"tiers": [{**EDGE, "backend": "grpc"}]})


def test_duplicate_tier_names_rejected():
    with pytest.raises(ConfigError, match="repeated: edge"):
        settings_from_dict({"tiers": [EDGE, EDGE]})


def test_missing_tiers_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="tiers"):
        settings_from_dict({})
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "missing.yaml")


def test_api_key_comes_from_the_named_environment_variable(monkeypatch):
    tier = settings_from_dict({"tiers": [{**EDGE, "api_key_env": "TW_TEST_KEY"}]}).tiers[0]
    monkeypatch.delenv("TW_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="TW_TEST_KEY is not set"):
        tier.api_key()
    monkeypatch.setenv("TW_TEST_KEY", "sk-secret")
    assert tier.api_key() == "sk-secret"
