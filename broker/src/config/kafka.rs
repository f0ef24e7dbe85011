//! What Kafka defines for each config: its type, default and whether it can change at run
//! time (`catalog`, generated from Kafka's own definitions), with the lookups and checks the
//! config parser, the admin APIs and the controller share. It depends on nothing else in the
//! crate, so any layer may use it.

use super::catalog;

pub use super::catalog::{BrokerKey, Dynamic, Kind, TopicKey};

/// The broker config Kafka defines under `name`.
pub fn kafka_broker_key(name: &str) -> Option<&'static BrokerKey> {
    catalog::BROKER.binary_search_by(|k| k.name.cmp(name)).ok().map(|i| &catalog::BROKER[i])
}

/// The topic config Kafka defines under `name`.
pub fn kafka_topic_key(name: &str) -> Option<&'static TopicKey> {
    catalog::TOPIC.binary_search_by(|k| k.name.cmp(name)).ok().map(|i| &catalog::TOPIC[i])
}

/// Checks that `value` parses as Kafka parses a config of type `kind`.
pub fn check_kind(key: &str, kind: Kind, value: &str) -> Result<(), String> {
    let v = value.trim();
    let ok = match kind {
        Kind::Boolean => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
        Kind::Int => v.parse::<i32>().is_ok(),
        Kind::Short => v.parse::<i16>().is_ok(),
        Kind::Long => v.parse::<i64>().is_ok(),
        Kind::Double => v.parse::<f64>().is_ok(),
        Kind::String | Kind::List | Kind::Class | Kind::Password => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value '{value}' for {key}: expected {kind:?}").to_lowercase())
    }
}

/// The known name closest to `name` (edit distance), if one is close enough to be a typo.
pub fn closest_name<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let max = (name.len() / 4).clamp(2, 6);
    known.map(|k| (edit_distance(name, k), k)).filter(|(d, _)| *d <= max).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
