"""The typed configs of the forecast and certify commands: defaults and range checks in one place, one-line
errors naming the field before any model loads."""

from __future__ import annotations

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.evaluation.certify import CertifyConfig, certify_config, run_certify
from rlvr_safety.evaluation.forecast import ForecastConfig, forecast_config, run_forecast


@pytest.mark.parametrize(("values", "needle"), [
    ({"beta": 0.0}, "forecast: beta: Input should be greater than 0"),
    ({"beta": 0.1, "k": 0}, "forecast: k:"),
    ({"beta": 0.1, "temperature": 0.0}, "forecast: temperature:"),
    ({"beta": 0.1, "judge": "kewyord"}, "unknown judge 'kewyord'"),
    ({"beta": 0.1, "bata": 1}, "forecast: unknown key 'bata'"),
])
def test_forecast_config_rejects_bad_values_in_one_line(values, needle):
    with pytest.raises(UserError) as exc:
        forecast_config(model="m", task="arithmetic", **values)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(("values", "needle"), [
    ({"k": 0}, "certify: k:"), ({"alpha": 1.5}, "certify: alpha:"), ({"seed": -3}, "certify: seed:"),
    ({"judge": "nope"}, "unknown judge 'nope'"),
])
def test_certify_config_rejects_bad_values_in_one_line(values, needle):
    with pytest.raises(UserError) as exc:
        certify_config(policy="a", reference="b", **values)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_defaults_live_in_the_config_classes(tmp_path):
    fc = forecast_config(model="m", task="arithmetic", beta=0.1)
    assert (fc.k, fc.limit, fc.judge, fc.max_new_tokens) == (8, 32, "keyword", 128)
    cc = certify_config(policy="a", reference="b")
    assert (cc.suite, cc.limit, cc.k, cc.judge, cc.max_new_tokens) == ("safety5", 50, 1, "keyword", 64)
    assert set(ForecastConfig.model_fields) >= {"model", "task", "beta", "task_config"}
    assert set(CertifyConfig.model_fields) >= {"policy", "reference", "measure"}
    # the runners validate before any model or data is touched
    with pytest.raises(UserError, match="beta"):
        run_forecast("no-such-model", "arithmetic", beta=-1.0, out=tmp_path)
    with pytest.raises(UserError, match="k:"):
        run_certify("no-such-model", "no-such-model", tmp_path, k=0)
