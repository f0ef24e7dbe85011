#!/usr/bin/env bash
# Regenerates broker/src/config/catalog.rs from Apache Kafka's own config definitions (the
# Kafka jars from Maven, see scripts/lib/kafka-dist.sh). Run after changing KAFKA_VERSION and
# commit the result; builds and CI only read the generated file.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/kafka-dist.sh
source "$ROOT/scripts/lib/kafka-dist.sh"
kafka_dist_fetch
cp="$(kafka_classpath)"
out="$ROOT/target/config-catalog"
mkdir -p "$out"
javac -d "$out" -cp "$cp" "$ROOT/scripts/kafka/catalog/ConfigCatalog.java"
java -cp "$out:$cp" -Dlog4j2.level=ERROR ConfigCatalog "$KAFKA_VERSION" >"$ROOT/broker/src/config/catalog.rs.tmp"
mv "$ROOT/broker/src/config/catalog.rs.tmp" "$ROOT/broker/src/config/catalog.rs"
rustfmt --config-path "$ROOT/rustfmt.toml" "$ROOT/broker/src/config/catalog.rs"
echo "wrote broker/src/config/catalog.rs"
