"""The base of every scenario model: an unknown key is an error (a misspelt `protocl:` must not be
silently ignored: the loader names its line), and a key may be written by its alias (`from`, `link-down`)."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
