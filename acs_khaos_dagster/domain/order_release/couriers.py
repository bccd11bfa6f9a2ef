"""Courier mapping: a Khaos courier code to ACS's delivery agent and service."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class DeliveryRoute(BaseModel):
    """How ACS should ship an order: ``DeliveryAgent`` (carrier) and ``DeliveryService``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: str = Field(min_length=1)
    service: str = Field(min_length=1)


class UnmappedCourierError(ValueError):
    """A Khaos courier code has no route and the map has no default."""


def _courier_key(code: str) -> str:
    return code.strip().upper()


class CourierMap(BaseModel):
    """Khaos ``CourierCode`` -> ACS delivery route (configuration).

    Codes match case-insensitively after trimming. An order whose courier code is not
    mapped (including an empty code) ships by ``default``; with ``default=None`` it is
    refused (``UnmappedCourierError``) so a wrong service is never chosen silently.
    The defaults cover the codes the sandbox uses (``DPD``) and the common UK ones.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    routes: dict[str, DeliveryRoute] = {
        "DPD": DeliveryRoute(agent="DPD", service="48"),
        "DPD24": DeliveryRoute(agent="DPD", service="24"),
        "DPD48": DeliveryRoute(agent="DPD", service="48"),
        "DPDND": DeliveryRoute(agent="DPD", service="ND"),
        "RM": DeliveryRoute(agent="RM", service="48"),
        "RM24": DeliveryRoute(agent="RM", service="24"),
        "RM48": DeliveryRoute(agent="RM", service="48"),
    }
    default: DeliveryRoute | None = DeliveryRoute(agent="DPD", service="48")

    @field_validator("routes")
    @classmethod
    def _normalise(cls, value: dict[str, DeliveryRoute]) -> dict[str, DeliveryRoute]:
        return {_courier_key(k): v for k, v in value.items()}

    def route_for(self, courier_code: str) -> DeliveryRoute:
        route = self.routes.get(_courier_key(courier_code), self.default)
        if route is None:
            raise UnmappedCourierError(f"Khaos courier code {courier_code!r} has no ACS route")
        return route
