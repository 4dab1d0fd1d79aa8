import pytest
from pydantic import ValidationError

from evalcluster.simulator.config import SimulatorConfig


def test_error_rate_splits_evenly_over_the_four_faults():
    rates = SimulatorConfig(error_rate=0.2, error_503_rate=0.5).fault_rates()
    assert rates.error_500 == pytest.approx(0.05)
    assert rates.error_503 == pytest.approx(0.55)
    assert rates.timeout == pytest.approx(0.05)
    assert rates.drop == pytest.approx(0.05)


def test_fault_rates_adding_up_past_one_are_rejected():
    with pytest.raises(ValidationError, match="add up"):
        SimulatorConfig(error_500_rate=0.7, drop_rate=0.4)


def test_updated_validates_and_rejects_unknown_fields():
    config = SimulatorConfig(rpm=60)
    assert config.updated({"tpm": 1000}).tpm == 1000
    assert config.updated({"tpm": 1000}).rpm == 60
    with pytest.raises(ValidationError):
        config.updated({"rpn": 5})
    with pytest.raises(ValidationError):
        config.updated({"accuracy": 1.5})


def test_api_keys_never_appear_in_repr_or_public_dump():
    config = SimulatorConfig(api_keys=["sk-secret-1", "sk-secret-2"])
    assert "sk-secret" not in repr(config)
    assert "sk-secret" not in str(config.public_dump())
    assert config.public_dump()["api_keys"] == "<2 keys>"
