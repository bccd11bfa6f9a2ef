"""Orders group: orders Khaos has released for fulfilment."""

import pandas as pd
from dagster import AssetExecutionContext, Definitions, asset

from acs_khaos_dagster.defs.resources import KhaosApiResource, SettingsResource
from acs_khaos_dagster.defs.schemas import ReleasedOrderLinesType
from acs_khaos_dagster.domain.orders import released_order_lines_frame


@asset(
    group_name="orders",
    kinds={"khaos", "pandas"},
    dagster_type=ReleasedOrderLinesType,
    description="Lines of orders whose invoice waits at the release stage "
    "for the sites ACS fulfils.",
)
def khaos_released_orders(
    context: AssetExecutionContext, settings: SettingsResource, khaos: KhaosApiResource
) -> pd.DataFrame:
    conf = settings.load().khaos
    released = conf.stages.released
    orders = []
    with khaos.client() as client:
        for site_id in (conf.sites.selling, conf.sites.hire_stock):
            orders.extend(client.export_orders([released], site_id))
    unique = {order.order_id: order for order in orders}
    frame = released_order_lines_frame(unique.values(), released)
    context.add_output_metadata(
        {
            "orders": int(frame["order_id"].nunique()),
            "lines": len(frame),
            "units": int(frame["quantity"].sum()),
            "hire_lines": int(frame["is_hire"].sum()),
        }
    )
    return frame


defs = Definitions(assets=[khaos_released_orders])
