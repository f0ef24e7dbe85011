"""Nothing acknowledged is lost: reads Kafka's VerifiableProducer output (JSON lines) and
VerifiableConsumer --verbose output, and fails unless every acknowledged value was consumed,
none twice, and offsets only grow within each partition.

    python3 scripts/lib/verify_acked.py produced.jsonl consumed.jsonl
"""
import json, sys
def events(path):
    for line in open(path):
        if line.startswith("{"):
            yield json.loads(line)

acked, consumed, last = set(), [], {}
for e in events(sys.argv[1]):
    if e.get("name") == "producer_send_success":
        acked.add(e["value"])
problems = []
for e in events(sys.argv[2]):
    if e.get("name") != "record_data":
        continue
    p, o = e["partition"], e["offset"]
    if p in last and o <= last[p]:
        problems.append(f"partition {p}: offset {o} after {last[p]}")
    last[p] = o
    consumed.append(e["value"])
seen = set(consumed)
missing = acked - seen
dupes = len(consumed) - len(seen)
print(f"acknowledged {len(acked)}, consumed {len(consumed)} ({len(seen)} distinct), "
      f"missing {len(missing)}, duplicates {dupes}, order problems {len(problems)}")
if missing:
    print("missing (first 10):", sorted(missing, key=int)[:10])
for p in problems[:10]:
    print(p)
sys.exit(1 if missing or dupes or problems or not acked else 0)
