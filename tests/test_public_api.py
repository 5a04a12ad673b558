import tierwise

EXPECTED = {
    "ConfigError", "Decision", "RouteRequest", "Router", "Settings", "Tier", "TierHealth", "TierView",
    "TierwiseError", "__version__", "create_app", "load_settings", "settings_from_dict",
}


def test_public_api_is_locked():
    assert set(tierwise.__all__) == EXPECTED


def test_all_exports_resolve():
    for name in tierwise.__all__:
        assert getattr(tierwise, name) is not None
