"""Configuration: keywords > POSBRIDGE_* > TOML > defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from posbridge.host.config import KEYS, Config, load_config
from posbridge.protocols.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_hardware(isolated_env: Path) -> None:
    config = load_config(environ={})
    assert config.audio.readers == ()
    assert config.dongles.links == ()
    assert config.scanner.url == ""
    assert config.scanner.check_in == "cautious"
    assert (config.console.host, config.console.port) == ("127.0.0.1", 8080)
    assert config.queue_url == f"sqlite:///{config.state_dir / 'queue.db'}"


def test_keywords_beat_environment_beat_toml(isolated_env: Path) -> None:
    toml = write(isolated_env / "posbridge.toml", '[lane]\nid = "from-toml"\ncurrency = "EUR"\n'
                 '[console]\nport = 9000\n[audio]\nreaders = ["wav://a.wav"]\n')
    environ = {"POSBRIDGE_LANE_ID": "from-env", "POSBRIDGE_AUDIO_READERS": "virtual://,wav://b.wav"}
    config = load_config(toml, environ=environ, console_port=0)
    assert config.lane.id == "from-env"
    assert config.lane.currency == "EUR"
    assert config.console.port == 0
    assert config.audio.readers == ("virtual://", "wav://b.wav")


def test_local_posbridge_toml_is_found(isolated_env: Path) -> None:
    write(isolated_env / "posbridge.toml", '[lane]\nid = "here"\n')
    assert load_config(environ={}).lane.id == "here"


def test_config_is_frozen(isolated_env: Path) -> None:
    config = load_config(environ={})
    with pytest.raises(AttributeError):
        config.lane = config.lane  # type: ignore[misc]


@pytest.mark.parametrize(
    ("toml", "message", "key"),
    [
        ('[queue]\nurl = "postgres://db"\n', "posbridge.toml: [queue] url: must start with sqlite:/// or nats://",
         "[queue] url"),
        ("[console]\nport = 70000\n", "[console] port: must be a TCP port 0-65535", "[console] port"),
        ('[console]\nport = "x"\n', "[console] port: must be a whole number", "[console] port"),
        ('[lane]\ncurrency = "usd"\n', "[lane] currency: must be an ISO 4217 code", "[lane] currency"),
        ('[audio]\nreaders = ["hw:1"]\n', "[audio] readers: entry 1 must start with device://",
         "[audio] readers"),
        ('[queue]\npath = "x"\n', "posbridge.toml: [queue] path: unknown key (known: url)", "[queue] path"),
        ("[offline]\nmax_count = 0\n", "[offline] max_count: must be at least 1", "[offline] max_count"),
        ('[scanner]\ncheck_in = "eager"\n', "[scanner] check_in: must be one of cautious, quick",
         "[scanner] check_in"),
        ("[lane\n", "posbridge.toml: not valid TOML", None),
    ],
)
def test_bad_toml_names_the_key(isolated_env: Path, toml: str, message: str, key: str | None) -> None:
    path = write(isolated_env / "posbridge.toml", toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert message in str(caught.value)
    assert caught.value.key == key


def test_bad_environment_value_names_the_variable(isolated_env: Path) -> None:
    with pytest.raises(ConfigError, match=r"^POSBRIDGE_CONSOLE_ENABLED: must be true or false$"):
        load_config(environ={"POSBRIDGE_CONSOLE_ENABLED": "perhaps"})


def test_unknown_keyword_is_refused(isolated_env: Path) -> None:
    with pytest.raises(ConfigError, match="console_prt"):
        load_config(environ={}, console_prt=1)


def test_missing_explicit_file(isolated_env: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(isolated_env / "nope.toml", environ={})


def test_every_key_has_an_environment_variable() -> None:
    names = {key.env for key in KEYS}
    assert {"POSBRIDGE_QUEUE_URL", "POSBRIDGE_STATE_DIR", "POSBRIDGE_CONSOLE_PORT",
            "POSBRIDGE_OFFLINE_MAX_TOTAL_AMOUNT"} <= names
    assert len(names) == len(KEYS)


def test_example_config_in_deploy_is_valid(isolated_env: Path) -> None:
    example = Path(__file__).parents[3] / "deploy" / "posbridge.toml"
    config = load_config(example, environ={})
    assert isinstance(config, Config)
    assert config.console.port == 8080
