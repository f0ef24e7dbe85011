//! Conditions as Kubernetes conventions want them: one per type, `lastTransitionTime` moved
//! only when the status flips, `observedGeneration` on each.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition types the operator writes.
pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// Sets condition `type_` in `conditions` (replacing one of the same type); the transition
/// time is `now` when the status changed and kept otherwise.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" };
    let last = conditions.iter().find(|c| c.type_ == type_);
    let since = match last {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.clone(),
    };
    let new = Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    };
    conditions.retain(|c| c.type_ != type_);
    conditions.push(new);
    conditions.sort_by_key(|c| order(&c.type_));
}

fn order(type_: &str) -> usize {
    [READY, PROGRESSING, DEGRADED].iter().position(|t| *t == type_).unwrap_or(usize::MAX)
}

/// The condition of `type_`, if set.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut cs = Vec::new();
        set(&mut cs, READY, false, "Starting", "0/3 brokers ready", Some(1), &at(10));
        set(&mut cs, READY, false, "Starting", "2/3 brokers ready", Some(1), &at(20));
        assert_eq!(get(&cs, READY).unwrap().last_transition_time, at(10));
        assert_eq!(get(&cs, READY).unwrap().message, "2/3 brokers ready");
        set(&mut cs, DEGRADED, false, "None", "", Some(1), &at(20));
        set(&mut cs, READY, true, "Ready", "3/3 brokers ready", Some(2), &at(30));
        assert_eq!(get(&cs, READY).unwrap().last_transition_time, at(30));
        assert_eq!(get(&cs, READY).unwrap().observed_generation, Some(2));
        let types: Vec<_> = cs.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, DEGRADED]);
    }
}
