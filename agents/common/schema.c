/* schema.c: the tables of one tenant's demo database (DATA_DIR/<tenant>.db).
 *
 * dealer-data creates and fills them; the agents read them and write their
 * bookings and orders into them. Money is in US dollars (REAL, rounded to
 * cents), times are ISO 8601 local times of the dealership without a zone
 * ("2027-01-04T09:30"), dates "2027-01-04". Policies are JSON values under
 * a key, so a dealer group's rules (APR by credit band, fees, taxes...)
 * are data, not code.
 */
#include "agent.h"

const char dl_schema_sql[] =
    "PRAGMA journal_mode=WAL;\n"
    /* the mark of a dealer-data file, DL_APPLICATION_ID ("DLRD"; one
     * literal, as tests read this text): the runtime opens no other */
    "PRAGMA application_id = 1145852484;\n"
    /* the dealer group this file belongs to */
    "CREATE TABLE IF NOT EXISTS tenant (\n"
    "  id TEXT PRIMARY KEY,\n"
    "  name TEXT NOT NULL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS dealerships (\n"
    "  id TEXT PRIMARY KEY,\n"   /* e.g. "ns-minneapolis" */
    "  name TEXT NOT NULL,\n"
    "  city TEXT NOT NULL,\n"
    "  state TEXT NOT NULL,\n"   /* two letters */
    "  address TEXT,\n"         /* street, city, state, ZIP */
    "  phone TEXT NOT NULL,\n"
    "  brands TEXT NOT NULL,\n"  /* JSON array of makes it sells new */
    "  sales_tax_rate REAL NOT NULL,\n" /* 0.06875 */
    "  doc_fee REAL NOT NULL,\n"
    "  registration_fee REAL NOT NULL,\n"
    "  opens TEXT NOT NULL,\n"   /* "09:00" */
    "  closes TEXT NOT NULL\n"   /* "19:00" */
    ");\n"
    "CREATE TABLE IF NOT EXISTS vehicles (\n"
    "  vin TEXT PRIMARY KEY,\n"  /* 17 characters, valid check digit */
    "  dealership_id TEXT NOT NULL REFERENCES dealerships(id),\n"
    "  year INTEGER NOT NULL,\n"
    "  make TEXT NOT NULL,\n"
    "  model TEXT NOT NULL,\n"
    "  trim TEXT NOT NULL,\n"
    "  body TEXT NOT NULL,\n"    /* sedan|suv|truck|hatchback|coupe|van */
    "  condition TEXT NOT NULL,\n" /* new|used|certified */
    "  mileage INTEGER NOT NULL,\n"
    "  price REAL NOT NULL,\n"
    "  color TEXT NOT NULL,\n"
    "  fuel TEXT NOT NULL,\n"    /* gas|hybrid|electric|diesel */
    "  drivetrain TEXT NOT NULL,\n" /* fwd|rwd|awd|4wd */
    "  mpg INTEGER,\n"           /* combined; NULL for electric */
    "  range_miles INTEGER,\n"   /* electric only */
    "  seats INTEGER NOT NULL,\n"
    "  features TEXT NOT NULL,\n" /* JSON array of strings */
    "  status TEXT NOT NULL DEFAULT 'available'\n" /* available|hold|sold */
    ");\n"
    "CREATE INDEX IF NOT EXISTS vehicles_by_model ON vehicles(make, model);\n"
    "CREATE INDEX IF NOT EXISTS vehicles_by_price ON vehicles(price);\n"
    /* open test-drive and service appointments are computed from these */
    "CREATE TABLE IF NOT EXISTS test_drives (\n"
    "  id TEXT PRIMARY KEY,\n"   /* "TD-" + number */
    "  vin TEXT NOT NULL REFERENCES vehicles(vin),\n"
    "  dealership_id TEXT NOT NULL,\n"
    "  starts_at TEXT NOT NULL,\n"
    "  customer_name TEXT NOT NULL,\n"
    "  phone TEXT,\n"
    "  email TEXT,\n"
    "  created_at TEXT NOT NULL,\n"
    "  UNIQUE (vin, starts_at)\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS service_slots (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  dealership_id TEXT NOT NULL REFERENCES dealerships(id),\n"
    "  starts_at TEXT NOT NULL,\n"
    "  bay INTEGER NOT NULL,\n"
    "  minutes INTEGER NOT NULL,\n"
    "  booked INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS slots_by_time ON service_slots(dealership_id, starts_at);\n"
    "CREATE TABLE IF NOT EXISTS service_bookings (\n"
    "  id TEXT PRIMARY KEY,\n"   /* "SV-" + number */
    "  slot_id INTEGER NOT NULL UNIQUE REFERENCES service_slots(id),\n"
    "  vin TEXT NOT NULL,\n"
    "  service TEXT NOT NULL,\n"
    "  customer_name TEXT NOT NULL,\n"
    "  phone TEXT,\n"
    "  notes TEXT,\n"
    "  created_at TEXT NOT NULL\n"
    ");\n"
    /* vehicles customers own (the service desk's records), by VIN */
    "CREATE TABLE IF NOT EXISTS customer_vehicles (\n"
    "  vin TEXT PRIMARY KEY,\n"
    "  year INTEGER NOT NULL,\n"
    "  make TEXT NOT NULL,\n"
    "  model TEXT NOT NULL,\n"
    "  owner_name TEXT NOT NULL,\n"
    "  phone TEXT,\n"
    "  mileage INTEGER NOT NULL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS recalls (\n"
    "  campaign TEXT PRIMARY KEY,\n" /* "24V-123" */
    "  make TEXT NOT NULL,\n"
    "  model TEXT NOT NULL,\n"
    "  year_from INTEGER NOT NULL,\n"
    "  year_to INTEGER NOT NULL,\n"
    "  component TEXT NOT NULL,\n"
    "  summary TEXT NOT NULL,\n"
    "  remedy TEXT NOT NULL\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS parts (\n"
    "  part_number TEXT PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  category TEXT NOT NULL,\n" /* brakes|filters|electrical|... */
    "  make TEXT NOT NULL,\n"
    "  model TEXT,\n"            /* NULL: fits every model of the make */
    "  year_from INTEGER NOT NULL,\n"
    "  year_to INTEGER NOT NULL,\n"
    "  price REAL NOT NULL,\n"
    "  labor_hours REAL NOT NULL\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS parts_by_fit ON parts(make, model);\n"
    "CREATE TABLE IF NOT EXISTS part_stock (\n"
    "  part_number TEXT NOT NULL REFERENCES parts(part_number),\n"
    "  dealership_id TEXT NOT NULL REFERENCES dealerships(id),\n"
    "  quantity INTEGER NOT NULL,\n"
    "  PRIMARY KEY (part_number, dealership_id)\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS part_orders (\n"
    "  id TEXT PRIMARY KEY,\n"   /* "PO-" + number */
    "  part_number TEXT NOT NULL REFERENCES parts(part_number),\n"
    "  dealership_id TEXT NOT NULL,\n"
    "  quantity INTEGER NOT NULL,\n"
    "  vin TEXT,\n"
    "  customer_name TEXT,\n"
    "  status TEXT NOT NULL,\n"  /* reserved (from stock) | ordered */
    "  ready_by TEXT NOT NULL,\n" /* date */
    "  total REAL NOT NULL,\n"
    "  created_at TEXT NOT NULL\n"
    ");\n"
    /* the dealer group's rules; value is JSON. Keys used by the agents:
     *   calendar.start       "2027-01-04": the first day of the demo
     *                        calendar (slots are generated from it)
     *   finance.apr          {"excellent":5.49,"good":6.99,"fair":10.49,
     *                         "poor":15.99}  percent, by credit band
     *   finance.bands        {"excellent":740,"good":670,"fair":580,
     *                         "poor":300}  lowest score of each band
     *   finance.terms        [36,48,60,72,84]
     *   finance.min_down_pct {"excellent":0,"good":5,"fair":10,"poor":20}
     *   finance.max_amount   {"excellent":120000,...}
     *   finance.taxable_fees true|false (doc fee taxed)
     *   test_drive           {"minutes":30,"per_hour":2}
     *   service.labor_rate   149.0 (per hour)
     *   parts.lead_days      {"in_stock":0,"order":3}
     */
    "CREATE TABLE IF NOT EXISTS policies (\n"
    "  key TEXT PRIMARY KEY,\n"
    "  value TEXT NOT NULL\n"
    ");\n"
    /* written by the runtime: one row per idempotency key and tool */
    "CREATE TABLE IF NOT EXISTS idempotency (\n"
    "  key TEXT NOT NULL,\n"
    "  tool TEXT NOT NULL,\n"
    "  args_hash TEXT NOT NULL,\n"
    "  result TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL,\n"
    "  PRIMARY KEY (key, tool)\n"
    ");\n";
