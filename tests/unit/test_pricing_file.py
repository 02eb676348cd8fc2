"""MODEL_PRICING_FILE: operators override prices; a bad file stops start-up with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.llm.pricing import DEFAULT_PRICES, ModelPrice, PricingFileError, load_prices
from agentmesh.settings import ModelSettings, load_settings


def test_json_and_toml_files_override_and_extend_the_defaults(tmp_path: Path) -> None:
    json_file = tmp_path / "prices.json"
    json_file.write_text('{"my-model": {"input_per_mtok": 0.5, "output_per_mtok": 1.5}}')
    toml_file = tmp_path / "prices.toml"
    toml_file.write_text('["claude-haiku-4-5"]\ninput_per_mtok = 9\noutput_per_mtok = 99\n')
    assert load_prices(json_file)["my-model"] == ModelPrice(0.5, 1.5)
    assert load_prices(json_file)["claude-sonnet-4-6"] == DEFAULT_PRICES["claude-sonnet-4-6"]
    assert load_prices(toml_file)["claude-haiku-4-5"] == ModelPrice(9.0, 99.0)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "MODEL_PRICING_FILE"),
        ('{"m": {"input_per_mtok": 1}}', "needs numeric input_per_mtok and output_per_mtok"),
        ('{"m": {"input_per_mtok": -1, "output_per_mtok": 1}}', "negative price"),
        ("[1, 2]", "expected a table of models"),
    ],
)
def test_a_bad_file_is_refused_with_a_message_naming_the_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(PricingFileError, match=problem):
        load_prices(path)


def test_start_up_stops_on_a_bad_pricing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODEL_PRICING_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(SystemExit):
        load_settings(ModelSettings)
    assert "MODEL_PRICING_FILE" in capsys.readouterr().err


def test_a_cached_input_price_overrides_the_cache_read_multiplier(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '["local-llama"]\ninput_per_mtok = 0\noutput_per_mtok = 0\n["my-gpt"]\n'
        "input_per_mtok = 2\noutput_per_mtok = 8\ncached_input_per_mtok = 0.5\n"
    )
    table = load_prices(path)
    assert table["my-gpt"] == ModelPrice(2.0, 8.0, 0.5)
    assert table["my-gpt"].cache_read_per_mtok == 0.5
    assert table["local-llama"].cache_read_per_mtok == 0.0
