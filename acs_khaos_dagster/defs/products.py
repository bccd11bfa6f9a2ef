"""Products group: the Khaos SKU master (the single source of truth for SKUs)."""


from datetime import UTC, datetime

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, asset

from acs_khaos_dagster.defs.resources import KhaosApiResource
from acs_khaos_dagster.defs.schemas import SkuMasterType
from acs_khaos_dagster.domain.catalogue import sku_master_frame

# GetStockList needs a "changed since" date; this one predates any Khaos install.
BEGINNING_OF_TIME = datetime(2000, 1, 1, tzinfo=UTC)


@asset(
    group_name="products",
    kinds={"khaos", "pandas"},
    dagster_type=SkuMasterType,
    description="Khaos stock items (SCS parents and children), keyed by the stable StockID.",
)
def khaos_sku_master(context: AssetExecutionContext, khaos: KhaosApiResource) -> pd.DataFrame:
    with khaos.client() as client:
        codes = client.get_stock_list(BEGINNING_OF_TIME)
        items = client.export_stock(codes)
    frame = sku_master_frame(items)
    children = frame[frame["stock_controlled"]]
    context.add_output_metadata(
        {
            "stock_items": len(frame),
            "scs_parents": int((~frame["stock_controlled"]).sum()),
            "hire_skus": int(children["is_hire"].sum()),
            "discontinued": int(frame["discontinued"].sum()),
            "published_on_web": int(children["publish_on_web"].sum()),
            "sample": MetadataValue.md(frame.head(10).to_markdown(index=False)),
        }
    )
    return frame
