"""What every part of a spec shares: forbidding unknown fields, two small number types, the task."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

PositiveInt = Annotated[int, Field(ge=1)]
IntOrPair = int | tuple[int, int]
Task = Literal["classification", "regression"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
