-- Central pharmacy (issue 5): see crates/store/src/pharmacy.rs.
-- Quantities are in dispensing units (拆零单位), money in integer fen, dates of
-- expiry as local YYYY-MM-DD, times as RFC 3339 UTC.

-- Stock on hand per institution, drug and manufacturer's batch. The units of an
-- opened (split) package are qty modulo the drug's package size.
CREATE TABLE IF NOT EXISTS ph_batch (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  inst TEXT NOT NULL,
  comm TEXT,
  drug TEXT NOT NULL,
  lot TEXT NOT NULL,            -- batch number (批号)
  expiry TEXT NOT NULL,         -- usable through this date
  qty INTEGER NOT NULL,         -- units on hand
  unit_cost INTEGER NOT NULL,   -- fen per dispensing unit
  received TEXT NOT NULL,
  version INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ph_batch_key ON ph_batch (inst, drug, lot, expiry, unit_cost);

-- Every movement of stock, append-only: receive, transfer-out, transfer-in,
-- dispense, split-open, adjust, expire-writeoff.
CREATE TABLE IF NOT EXISTS ph_ledger (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  inst TEXT NOT NULL,
  drug TEXT NOT NULL,
  batch INTEGER,                -- ph_batch.id
  kind TEXT NOT NULL,
  units INTEGER NOT NULL,       -- signed change of stock (0 for split-open)
  cost INTEGER NOT NULL,        -- signed units x unit cost, fen
  ref TEXT,                     -- requisition, prescription, stocktaking
  actor TEXT NOT NULL,
  note TEXT
);
CREATE INDEX IF NOT EXISTS ph_ledger_inst ON ph_ledger (inst, drug, seq);
CREATE INDEX IF NOT EXISTS ph_ledger_recent ON ph_ledger (inst, seq);

-- Units dispensed per year, institution and drug (volume-based procurement).
CREATE TABLE IF NOT EXISTS ph_usage (
  year INTEGER NOT NULL,
  inst TEXT NOT NULL,
  drug TEXT NOT NULL,
  comm TEXT,
  units INTEGER NOT NULL,
  PRIMARY KEY (year, inst, drug)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ph_usage_comm ON ph_usage (year, comm, drug);

-- Requisitions (请领) of a primary institution from its community's central pharmacy.
CREATE TABLE IF NOT EXISTS ph_req (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  inst TEXT NOT NULL,           -- the requesting institution
  central TEXT NOT NULL,        -- the community's lead hospital
  comm TEXT NOT NULL,
  state TEXT NOT NULL,          -- requested | approved | rejected | shipped | received
  note TEXT,
  reason TEXT,                  -- why rejected
  created TEXT NOT NULL, created_by TEXT NOT NULL,
  decided TEXT, decided_by TEXT,
  shipped TEXT, shipped_by TEXT,
  received TEXT, received_by TEXT,
  version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ph_req_inst ON ph_req (inst, state, id);
CREATE INDEX IF NOT EXISTS ph_req_central ON ph_req (central, state, id);

CREATE TABLE IF NOT EXISTS ph_req_line (
  req INTEGER NOT NULL,
  line INTEGER NOT NULL,
  drug TEXT NOT NULL,
  requested INTEGER NOT NULL,
  approved INTEGER,
  shipped INTEGER,
  PRIMARY KEY (req, line)
) WITHOUT ROWID;

-- What a shipment took from the central pharmacy, batch by batch, until received.
CREATE TABLE IF NOT EXISTS ph_transit (
  req INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  line INTEGER NOT NULL,
  drug TEXT NOT NULL,
  lot TEXT NOT NULL,
  expiry TEXT NOT NULL,
  units INTEGER NOT NULL,
  unit_cost INTEGER NOT NULL,
  PRIMARY KEY (req, seq)
) WITHOUT ROWID;

-- Shortages (缺药登记): registered by hand or raised when stock falls below the minimum.
CREATE TABLE IF NOT EXISTS ph_shortage (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  inst TEXT NOT NULL,
  comm TEXT,
  drug TEXT NOT NULL,
  source TEXT NOT NULL,         -- manual | low-stock
  note TEXT,
  at TEXT NOT NULL,
  by_user TEXT NOT NULL,
  resolved TEXT,
  resolved_by TEXT,
  resolution TEXT,
  version INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ph_shortage_open ON ph_shortage (inst, drug) WHERE resolved IS NULL;
CREATE INDEX IF NOT EXISTS ph_shortage_comm ON ph_shortage (comm, resolved);

-- Minimum stock per institution and drug (none by default).
CREATE TABLE IF NOT EXISTS ph_min_stock (
  inst TEXT NOT NULL,
  drug TEXT NOT NULL,
  units INTEGER NOT NULL,
  PRIMARY KEY (inst, drug)
) WITHOUT ROWID;

-- Agreed yearly volumes of volume-based procurement drugs, per community (or
-- allocated to an institution). Without a row a community takes the formulary's.
CREATE TABLE IF NOT EXISTS ph_vbp_volume (
  owner TEXT NOT NULL,          -- community or institution id
  drug TEXT NOT NULL,
  units INTEGER NOT NULL,
  set_at TEXT NOT NULL,
  set_by TEXT NOT NULL,
  PRIMARY KEY (owner, drug)
) WITHOUT ROWID;
