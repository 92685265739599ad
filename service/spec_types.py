"""What every part of a spec shares: forbidding unknown fields, and two small number types."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PositiveInt = Annotated[int, Field(ge=1)]
IntOrPair = int | tuple[int, int]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
