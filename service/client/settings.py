"""Where the client finds its server and key when the command line does not say."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_URL = "http://127.0.0.1:8000"


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVICE_", extra="ignore", frozen=True)

    # --url, else SERVICE_URL, else the address `service up` serves on.
    url: str = DEFAULT_URL
    # --key, else SERVICE_API_KEY, else the key `service up` wrote to <data dir>/api-key.
    api_key: str | None = None
    data_dir: Path = Path("data")

    @property
    def api_key_file(self) -> Path:
        return self.data_dir / "api-key"
