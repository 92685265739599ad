"""What every part of a spec shares: forbidding unknown fields, small number types, the task."""

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveInt = Annotated[int, Field(ge=1)]
IntOrPair = int | tuple[int, int]
Task = Literal["classification", "regression"]
# What torch.Generator.manual_seed takes that fits the database's BIGINT.
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]


def _admits_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    if get_origin(annotation) in (Union, types.UnionType, Annotated):
        return any(_admits_bool(arg) for arg in get_args(annotation))
    return False


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, data: Any) -> Any:
        # pydantic's lax mode reads true as 1 where the document says integer or number.
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if isinstance(value, bool) and field and not _admits_bool(field.annotation):
                    raise ValueError(f"{name}: expected a number, not {str(value).lower()}")
        return data
