"""Prints the rows of a Parquet file, one per line, as `ts|tenant|payload` (ts as PostgreSQL prints a timestamptz
with whole seconds), then its schema's PostgreSQL types: what the archive tests compare with the table's rows. An
independent reader: pyarrow, not the arrow-rs crate that wrote the file."""

import sys

import pyarrow.parquet as pq

table = pq.read_table(sys.argv[1])
for row in table.to_pylist():
    ts = row["ts"].strftime("%Y-%m-%d %H:%M:%S")
    print(f"{ts}+00|{row['tenant']}|{row['payload']}")
for field in table.schema:
    print(f"# {field.name} {field.type} {field.metadata[b'pg_type'].decode()}")
