-- Central pharmacy (issue 5): see crates/store/src/pharmacy.rs.
-- Quantities are in dispensing units (拆零单位), money in integer fen, dates of
-- expiry as local YYYY-MM-DD, times as RFC 3339 UTC.

-- Stock on hand per institution, drug and manufacturer's batch. The units of an
-- opened (split) package are qty modulo the drug's package size.
CREATE TABLE IF NOT EXISTS ph_batch (
  id BIGSERIAL PRIMARY KEY,
  inst TEXT COLLATE "C" NOT NULL,
  comm TEXT COLLATE "C",
  drug TEXT COLLATE "C" NOT NULL,
  lot TEXT COLLATE "C" NOT NULL,            -- batch number (批号)
  expiry TEXT COLLATE "C" NOT NULL,         -- usable through this date
  qty BIGINT NOT NULL,         -- units on hand
  unit_cost BIGINT NOT NULL,   -- fen per dispensing unit
  received TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ph_batch_key ON ph_batch (inst, drug, lot, expiry, unit_cost);

-- Every movement of stock, append-only: receive, transfer-out, transfer-in,
-- dispense, split-open, adjust, expire-writeoff.
CREATE TABLE IF NOT EXISTS ph_ledger (
  seq BIGSERIAL PRIMARY KEY,
  at TEXT COLLATE "C" NOT NULL,
  inst TEXT COLLATE "C" NOT NULL,
  drug TEXT COLLATE "C" NOT NULL,
  batch BIGINT,                -- ph_batch.id
  kind TEXT COLLATE "C" NOT NULL,
  units BIGINT NOT NULL,       -- signed change of stock (0 for split-open)
  cost BIGINT NOT NULL,        -- signed units x unit cost, fen
  ref TEXT COLLATE "C",                     -- requisition, prescription, stocktaking
  actor TEXT COLLATE "C" NOT NULL,
  note TEXT COLLATE "C"
);
CREATE INDEX IF NOT EXISTS ph_ledger_inst ON ph_ledger (inst, drug, seq);
CREATE INDEX IF NOT EXISTS ph_ledger_recent ON ph_ledger (inst, seq);

-- Units dispensed per year, institution and drug (volume-based procurement).
CREATE TABLE IF NOT EXISTS ph_usage (
  year BIGINT NOT NULL,
  inst TEXT COLLATE "C" NOT NULL,
  drug TEXT COLLATE "C" NOT NULL,
  comm TEXT COLLATE "C",
  units BIGINT NOT NULL,
  PRIMARY KEY (year, inst, drug)
);
CREATE INDEX IF NOT EXISTS ph_usage_comm ON ph_usage (year, comm, drug);

-- Requisitions (请领) of a primary institution from its community's central pharmacy.
CREATE TABLE IF NOT EXISTS ph_req (
  id BIGSERIAL PRIMARY KEY,
  inst TEXT COLLATE "C" NOT NULL,           -- the requesting institution
  central TEXT COLLATE "C" NOT NULL,        -- the community's lead hospital
  comm TEXT COLLATE "C" NOT NULL,
  state TEXT COLLATE "C" NOT NULL,          -- requested | approved | rejected | shipped | received
  note TEXT COLLATE "C",
  reason TEXT COLLATE "C",                  -- why rejected
  created TEXT COLLATE "C" NOT NULL, created_by TEXT COLLATE "C" NOT NULL,
  decided TEXT COLLATE "C", decided_by TEXT COLLATE "C",
  shipped TEXT COLLATE "C", shipped_by TEXT COLLATE "C",
  received TEXT COLLATE "C", received_by TEXT COLLATE "C",
  version BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ph_req_inst ON ph_req (inst, state, id);
CREATE INDEX IF NOT EXISTS ph_req_central ON ph_req (central, state, id);

CREATE TABLE IF NOT EXISTS ph_req_line (
  req BIGINT NOT NULL,
  line BIGINT NOT NULL,
  drug TEXT COLLATE "C" NOT NULL,
  requested BIGINT NOT NULL,
  approved BIGINT,
  shipped BIGINT,
  PRIMARY KEY (req, line)
);

-- What a shipment took from the central pharmacy, batch by batch, until received.
CREATE TABLE IF NOT EXISTS ph_transit (
  req BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  line BIGINT NOT NULL,
  drug TEXT COLLATE "C" NOT NULL,
  lot TEXT COLLATE "C" NOT NULL,
  expiry TEXT COLLATE "C" NOT NULL,
  units BIGINT NOT NULL,
  unit_cost BIGINT NOT NULL,
  PRIMARY KEY (req, seq)
);

-- Shortages (缺药登记): registered by hand or raised when stock falls below the minimum.
CREATE TABLE IF NOT EXISTS ph_shortage (
  id BIGSERIAL PRIMARY KEY,
  inst TEXT COLLATE "C" NOT NULL,
  comm TEXT COLLATE "C",
  drug TEXT COLLATE "C" NOT NULL,
  source TEXT COLLATE "C" NOT NULL,         -- manual | low-stock
  note TEXT COLLATE "C",
  at TEXT COLLATE "C" NOT NULL,
  by_user TEXT COLLATE "C" NOT NULL,
  resolved TEXT COLLATE "C",
  resolved_by TEXT COLLATE "C",
  resolution TEXT COLLATE "C",
  version BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ph_shortage_open ON ph_shortage (inst, drug) WHERE resolved IS NULL;
CREATE INDEX IF NOT EXISTS ph_shortage_comm ON ph_shortage (comm, resolved);

-- Minimum stock per institution and drug (none by default).
CREATE TABLE IF NOT EXISTS ph_min_stock (
  inst TEXT COLLATE "C" NOT NULL,
  drug TEXT COLLATE "C" NOT NULL,
  units BIGINT NOT NULL,
  PRIMARY KEY (inst, drug)
);

-- Agreed yearly volumes of volume-based procurement drugs, per community (or
-- allocated to an institution). Without a row a community takes the formulary's.
CREATE TABLE IF NOT EXISTS ph_vbp_volume (
  owner TEXT COLLATE "C" NOT NULL,          -- community or institution id
  drug TEXT COLLATE "C" NOT NULL,
  units BIGINT NOT NULL,
  set_at TEXT COLLATE "C" NOT NULL,
  set_by TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (owner, drug)
);
