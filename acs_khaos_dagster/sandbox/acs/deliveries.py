"""How ACS's daily files reach the drop: on time, late, twice, or after newer ones.

Real file drops are not tidy. ``file_late`` keeps a file back for ``later_by`` deliveries
(so newer files arrive first, and a returns file can arrive before the snapshot that
restocked its unit); ``file_twice`` delivers it now and again ``later_by`` deliveries
later under a new name (the same content re-sent days apart). Faults are decided per
file kind: ``FaultRule(operation="stock_units" | "returns", kind=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from acs_khaos_dagster.sandbox.acs import files
from acs_khaos_dagster.sandbox.faults import FILE_FAULTS, FaultInjector, FaultKind


@dataclass
class _Held:
    due: int  # the delivery number it reaches the drop at
    kind: str
    rows: list[list[str]]
    columns: tuple[str, ...]
    name: str = ""  # "" -> named at delivery time (a re-send carries the new stamp)


@dataclass
class FileDeliveries:
    drop_folder: Path
    account_code: str
    faults: FaultInjector
    delivered: int = 0
    held: list[_Held] = field(default_factory=list)
    log: list[dict[str, str | int]] = field(default_factory=list)

    def deliver(
        self, now: datetime, written: list[tuple[str, tuple[str, ...], list[list[str]]]]
    ) -> list[Path]:
        """One delivery of today's files (kind, columns, rows), with any held ones now due."""
        self.delivered += 1
        self.drop_folder.mkdir(parents=True, exist_ok=True)
        out: list[Path] = []
        for item in [h for h in self.held if h.due <= self.delivered]:
            self.held.remove(item)
            # A re-send is stamped a second after today's files, so the names never clash.
            resent = now + timedelta(seconds=1)
            name = item.name or files.file_name(item.kind, self.account_code, resent)
            out.append(files.write_csv(self.drop_folder / name, item.columns, item.rows))
            self.log.append({"file": name, "delivery": self.delivered, "what": "held back"})
        for kind, columns, rows in written:
            name = files.file_name(kind, self.account_code, now)
            rule = self.faults.decide(kind, set(FILE_FAULTS))
            if rule is not None and rule.kind == FaultKind.FILE_LATE:
                self.held.append(_Held(self.delivered + rule.later_by, kind, rows, columns, name))
                self.log.append({"file": name, "delivery": self.delivered, "what": "late"})
                continue
            out.append(files.write_csv(self.drop_folder / name, columns, rows))
            if rule is not None and rule.kind == FaultKind.FILE_TWICE:
                self.held.append(_Held(self.delivered + rule.later_by, kind, rows, columns))
                self.log.append({"file": name, "delivery": self.delivered, "what": "twice"})
        return out
