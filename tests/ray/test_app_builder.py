"""The Serve application as `serve run` (and KubeRay) build it from a config's args; building
needs Ray importable but no cluster."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tools.paths import REPO


def test_app_builder_builds_the_config_application(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray import serve

    from gateway.distributed.serve_app import INGRESS_DEPLOYMENT, app_builder

    monkeypatch.chdir(REPO)  # the config names /app/registry.yaml: point it at the checkout's
    config = yaml.safe_load((REPO / "deploy" / "ray" / "serve-config.yaml").read_text())
    args: dict[str, Any] = config["applications"][0]["args"]
    args = {**args, "settings": {**args["settings"], "registry": "registry.yaml"}}
    app = app_builder(args)
    assert isinstance(app, serve.Application)
    assert app._bound_deployment.name == INGRESS_DEPLOYMENT
    with pytest.raises(ValueError, match="unknown Ray option"):
        app_builder({**args, "replicas": 2})


def test_config_settings_lists_reach_the_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.distributed.serve_app import app_builder

    monkeypatch.chdir(REPO)
    settings = {"registry": "registry.yaml", "api_keys": ["k1", "k2"]}
    app = app_builder({"min_replicas": 1, "max_replicas": 1, "settings": settings})
    ingress_settings = app._bound_deployment.init_args[1]
    assert ingress_settings.api_keys == ("k1", "k2")  # not ("['k1'", "'k2']")
