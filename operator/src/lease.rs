//! Leader election on a `coordination.k8s.io/v1` Lease, as Kubernetes's own controllers do
//! (client-go's leaderelection): one operator replica reconciles, the others wait. The holder
//! renews the Lease every [`RENEW`]; another replica takes it over once it has not been renewed
//! for its duration. Writes carry the Lease's resourceVersion, so two replicas racing for it
//! cannot both win. A holder that cannot renew within the duration stops (the process exits
//! and is restarted as a follower), so two operators never act at once for long.
//!
//! [`decide`] is the pure part, with the clock passed in.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

/// How long a Lease holds without renewal (client-go's default for controllers).
pub const DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews it.
pub const RENEW: Duration = Duration::from_secs(5);

/// What to do about the Lease now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or its holder let it expire: take it.
    Take,
    /// It is ours: renew it.
    Renew,
    /// Another holder has it for this much longer.
    Wait { holder: String, expires_in: Duration },
}

/// The decision for `me` given the Lease's holder, last renewal and duration, at `now`.
pub fn decide(
    me: &str,
    holder: Option<&str>,
    renewed: Option<Timestamp>,
    duration: Duration,
    now: Timestamp,
) -> Decision {
    match holder {
        Some(h) if h == me => Decision::Renew,
        Some(h) if !h.is_empty() => {
            let expires =
                renewed.map(|r| r + SignedDuration::try_from(duration).unwrap_or_default());
            match expires {
                Some(at) if at > now => Decision::Wait {
                    holder: h.into(),
                    expires_in: Duration::try_from(at - now).unwrap_or_default(),
                },
                _ => Decision::Take,
            }
        }
        _ => Decision::Take,
    }
}

/// Waits until `me` holds Lease `name` in `namespace`, then keeps renewing it in the
/// background; the returned future ends when the Lease is lost (not renewed in time, or taken).
pub async fn acquire(
    api: Api<Lease>,
    name: &str,
    me: &str,
) -> impl std::future::Future<Output = String> + use<> {
    loop {
        match try_hold(&api, name, me).await {
            Ok(Decision::Take | Decision::Renew) => break,
            Ok(Decision::Wait { holder, expires_in }) => {
                tracing::info!(%holder, ?expires_in, "waiting for the leader election Lease");
                tokio::time::sleep(expires_in.min(RENEW).max(Duration::from_millis(500))).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election");
                tokio::time::sleep(RENEW).await;
            }
        }
    }
    tracing::info!(lease = name, "leading");
    let (name, me) = (name.to_string(), me.to_string());
    async move {
        let mut last = std::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW).await;
            match try_hold(&api, &name, &me).await {
                Ok(Decision::Renew | Decision::Take) => last = std::time::Instant::now(),
                Ok(Decision::Wait { holder, .. }) => return format!("{holder} took the Lease"),
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the leader election Lease");
                    if last.elapsed() >= DURATION {
                        return format!("the Lease was not renewed for {DURATION:?}: {e}");
                    }
                }
            }
        }
    }
}

/// Gives the Lease up (on a clean stop), so that a follower takes over at once instead of
/// after the Lease's duration. Best effort: the Lease expires anyway.
pub async fn release(api: &Api<Lease>, name: &str, me: &str) {
    let Ok(Some(mut lease)) = api.get_opt(name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(me) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    if let Err(e) = api.replace(name, &PostParams::default(), &lease).await {
        tracing::debug!(error = %e, "releasing the leader election Lease");
    }
}

/// One look at the Lease: takes or renews it when [`decide`] says so (the write fails if
/// someone else wrote it meanwhile), and says what was decided.
async fn try_hold(api: &Api<Lease>, name: &str, me: &str) -> Result<Decision, kube::Error> {
    let now = Timestamp::now();
    let existing = api.get_opt(name).await?;
    let spec = existing.as_ref().and_then(|l| l.spec.clone()).unwrap_or_default();
    let duration =
        spec.lease_duration_seconds.map_or(DURATION, |s| Duration::from_secs(s.max(1) as u64));
    let renewed = spec.renew_time.as_ref().map(|t| t.0);
    let decision = decide(me, spec.holder_identity.as_deref(), renewed, duration, now);
    if matches!(decision, Decision::Wait { .. }) {
        return Ok(decision);
    }
    let taking = decision == Decision::Take;
    let spec = LeaseSpec {
        holder_identity: Some(me.into()),
        lease_duration_seconds: Some(DURATION.as_secs() as i32),
        acquire_time: if taking { Some(MicroTime(now)) } else { spec.acquire_time },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + i32::from(taking)),
        ..spec
    };
    match existing {
        Some(mut lease) => {
            lease.spec = Some(spec);
            api.replace(name, &PostParams::default(), &lease).await?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn a_free_or_expired_lease_is_taken_and_a_live_one_waited_for() {
        let d = DURATION;
        assert_eq!(decide("a", None, None, d, at(100)), Decision::Take);
        assert_eq!(decide("a", Some(""), Some(at(99)), d, at(100)), Decision::Take);
        assert_eq!(decide("a", Some("a"), Some(at(0)), d, at(100)), Decision::Renew);
        assert_eq!(
            decide("a", Some("b"), Some(at(90)), d, at(100)),
            Decision::Wait { holder: "b".into(), expires_in: Duration::from_secs(5) }
        );
        assert_eq!(decide("a", Some("b"), Some(at(85)), d, at(100)), Decision::Take, "expired");
        assert_eq!(decide("a", Some("b"), None, d, at(100)), Decision::Take, "never renewed");
    }
}
