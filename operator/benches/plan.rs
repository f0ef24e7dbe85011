//! What the operator's placement decisions cost on a large cluster: 10,000 partitions of
//! replication factor 3 on five brokers, over three racks, when a sixth broker joins
//! (`rebalance`) and when one leaves (`drain`). The operator plans once per scaling step, in
//! its reconcile; these say how long that step thinks.
//!
//!   cargo bench -p sluice-operator --bench plan

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_operator::ops::scale::{drain, rebalance};
use sluice_operator::ops::PartitionState;

const PARTITIONS: i32 = 10_000;

/// Partitions spread round-robin over `brokers`, three replicas each.
fn cluster(brokers: i32) -> Vec<PartitionState> {
    (0..PARTITIONS)
        .map(|i| {
            let replicas: Vec<i32> = (0..3).map(|r| (i + r) % brokers).collect();
            PartitionState {
                topic: format!("t{}", i / 100),
                partition: i % 100,
                leader: replicas[0],
                isr: replicas.clone(),
                replicas,
            }
        })
        .collect()
}

fn racks(brokers: i32) -> BTreeMap<i32, String> {
    (0..brokers).map(|b| (b, format!("zone-{}", b % 3))).collect()
}

fn plan(c: &mut Criterion) {
    let five = cluster(5);
    let mut group = c.benchmark_group("plan-10k-partitions");
    group.sample_size(10);
    group.bench_function("rebalance-onto-a-sixth-broker", |b| {
        b.iter(|| rebalance(&five, &[0, 1, 2, 3, 4, 5], &racks(6)))
    });
    group.bench_function("rebalance-onto-a-sixth-broker-no-racks", |b| {
        b.iter(|| rebalance(&five, &[0, 1, 2, 3, 4, 5], &BTreeMap::new()))
    });
    group.bench_function("drain-one-of-five", |b| {
        b.iter(|| drain(&five, &[4], &[0, 1, 2, 3], &racks(5)))
    });
    group.finish();
}

criterion_group!(benches, plan);
criterion_main!(benches);
