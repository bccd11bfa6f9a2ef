"""The scenario's fixed tables: sizes, unit statuses and their shares, grades, and the
words a fashion brand's catalogue, customers and addresses are made of.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

ScenarioSize = Literal["tiny", "small", "brand"]
Progress = Callable[[str, int, int], None]

START_AT = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
HIRE_UNIT_SHARE_PCT = 30
STATUS_VARIANT_PCT = 5
UNKNOWN_STATUS = "Lost In Transit"
READY = "In Warehouse - Ready For Customer"
WITH_CUSTOMER = "With Customer"
EX_HIRED = "Ex-Hired"
ALLOCATION_STATUSES = (("Allocated", 70), ("Picking", 20), ("Packed", 10))
PROCESSING_STATUSES = (
    ("Receipted - No Location", 10),
    ("Awaiting Inspection", 15),
    ("In Warehouse Processing", 20),
    ("Cleaning", 15),
    ("In Refurbishment", 10),
    ("In Repair", 10),
    ("Quarantine", 5),
)
HIRE_ONLY_PROCESSING = (("Post-Rental Inspection", 15),)
GRADE_SHARES = (("A", 60), ("B", 25), ("C", 10), ("BER", 5))
SHORT_REASONS = ("STOCK_NOT_FOUND", "DAMAGED_AT_PICK")
_LOCATIONS = {
    "Receipted - No Location": "GOODSIN",
    "Awaiting Inspection": "INSP",
    "Post-Rental Inspection": "INSP-H",
    "In Warehouse Processing": "PROC",
    "Cleaning": "CLEAN",
    "In Refurbishment": "REFURB",
    "In Repair": "REPAIR",
    "Quarantine": "QUAR",
    "Picking": "PICK",
    "Packed": "PACK",
    EX_HIRED: "EXHIRE",
    UNKNOWN_STATUS: "",
    WITH_CUSTOMER: "",
}


@dataclass(frozen=True)
class ScenarioSpec:
    """How big a scenario is. ``generate_scenario`` picks one per size; tests may pass their own."""

    skus: int
    units: int
    orders: int
    returns: int
    unknown_status_units: int


SIZES: dict[str, ScenarioSpec] = {
    "tiny": ScenarioSpec(skus=20, units=300, orders=10, returns=5, unknown_status_units=0),
    "small": ScenarioSpec(skus=500, units=20_000, orders=300, returns=100, unknown_status_units=2),
    "brand": ScenarioSpec(
        skus=50_000, units=3_000_000, orders=20_000, returns=5_000, unknown_status_units=25
    ),
}

_CATEGORIES = (
    ("DRS", "Dress", ("6", "8", "10", "12", "14", "16"), (60, 260)),
    ("TOP", "Top", ("XS", "S", "M", "L", "XL"), (25, 90)),
    ("JKT", "Jacket", ("XS", "S", "M", "L", "XL"), (90, 320)),
    ("TRS", "Trousers", ("6", "8", "10", "12", "14", "16"), (45, 150)),
    ("SKT", "Skirt", ("6", "8", "10", "12", "14"), (40, 140)),
    ("KNT", "Jumper", ("XS", "S", "M", "L", "XL"), (50, 180)),
    ("COT", "Coat", ("6", "8", "10", "12", "14", "16"), (150, 480)),
    ("JNS", "Jeans", ("24", "26", "28", "30", "32"), (60, 160)),
)
_COLOURS = (
    ("NVY", "Navy"),
    ("BLK", "Black"),
    ("IVR", "Ivory"),
    ("RED", "Red"),
    ("GRN", "Forest Green"),
    ("PNK", "Blush Pink"),
    ("BLU", "Cobalt Blue"),
    ("CML", "Camel"),
    ("GRY", "Grey Marl"),
    ("OLV", "Olive"),
    ("BRG", "Burgundy"),
    ("SND", "Sand"),
)
_ADJECTIVES = (
    "Wrap",
    "Midi",
    "Tailored",
    "Linen",
    "Pleated",
    "Silk",
    "Belted",
    "Cropped",
    "Relaxed",
    "Fitted",
    "Tiered",
    "Ruched",
    "Satin",
    "Wool",
    "Broderie",
    "Jersey",
)
_FIRST_NAMES = (
    "Zoë",
    "Renée",
    "Siân",
    "Chloé",
    "Niamh",
    "Seán",
    "Aoife",
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Freya",
    "Grace",
    "Ruby",
    "Oliver",
    "Harry",
    "José",
    "Björn",
    "Mary-Kate",
    "Anne-Marie",
)
_LAST_NAMES = (
    "O'Brien",
    "D'Arcy",
    "McAllister",
    "Smith",
    "Jones",
    "Ní Bhriain",
    "Brontë",
    "Müller",
    "Fitzgerald-Hughes",
    "Taylor",
    "Davies",
    "Evans",
    "Wilson",
    "MacDonald",
    "O'Neill",
    "Le Brun",
    "St. John",
    "Ó Súilleabháin",
)
_STREETS = (
    "St. Mary's Road",
    "King's Parade",
    "Queen Street",
    "Church Lane",
    "Victoria Road",
    "Station Road",
    "High Street",
    "Mill Lane",
    "Castle Wynd",
    "Market Place",
    "Bishop's Walk",
    "Rue de l'Église Court",
)
_SECOND_LINES = (
    "",
    "",
    "",
    "Flat 3",
    "Flat 2/1",
    "The Old Rectory",
    "c/o Smith & Sons Ltd",
    "Unit 4, Marks & Spencer House",
    "Apartment 12",
    "Rose Cottage",
    "Café Zoë & Co",
)
_CITIES = (
    ("Glasgow", "G", "Lanarkshire"),
    ("Edinburgh", "EH", "Midlothian"),
    ("London", "SW", "Greater London"),
    ("London", "N", "Greater London"),
    ("Manchester", "M", "Greater Manchester"),
    ("Bath", "BA", "Somerset"),
    ("Llanelli", "SA", "Carmarthenshire"),
    ("Belfast", "BT", "County Antrim"),
    ("York", "YO", "North Yorkshire"),
    ("Brighton & Hove", "BN", "East Sussex"),
)
_DEFECTS_B = ("STAIN", "CREASE", "LOOSE_THREAD", "ODOUR")
_DEFECTS_C = ("TEAR", "BROKEN_ZIP", "MISSING_BUTTON", "STAIN", "SEAM_SPLIT", "FADING")
_DEFECTS_BER = ("TEAR", "BURN", "PERMANENT_STAIN", "FABRIC_DAMAGE")
ADDRESS_LINE_MAX = 35
POSTCODE_MAX = 10
