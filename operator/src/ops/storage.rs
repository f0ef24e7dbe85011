//! Growing the brokers' claims, as a pure function of `spec.storage.size` and the claims as
//! the API server reports them. No I/O: every branch is a unit test.
//!
//! A StatefulSet's claim template cannot change, so a larger size is applied to the existing
//! claims themselves (the StorageClass must allow expansion; the volume grows online); the
//! template keeps the size the cluster was made with, and a claim made later from it (a
//! scale-up) is grown the same way. While any claim's capacity is below its request the resize
//! is in progress, and no broker restarts (Strimzi users saw pods restarted mid-resize). A
//! size below what the claims already have is refused: claims cannot shrink.

/// A broker's claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    /// `spec.resources.requests.storage`, bytes.
    pub requested: u128,
    /// `status.capacity.storage`, bytes; `None` before the claim is bound.
    pub capacity: Option<u128>,
}

/// What storage does now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageStep {
    Steady,
    /// Raise these claims' requests to the spec's size.
    Grow(Vec<String>),
    /// A resize is in progress; the reason names the claims.
    Wait(String),
    /// The spec asks for less than the claims have; nothing changes.
    Refuse(String),
}

/// The next storage step for `size` bytes (the spec's, as written: `size_text`); `template`
/// is the size in the StatefulSet's claim template, which new claims get.
pub fn next_step(size: u128, size_text: &str, template: u128, claims: &[Claim]) -> StorageStep {
    if template > size {
        return StorageStep::Refuse(format!(
            "storage.size {size_text} is smaller than the {} the cluster's claims were made              with: claims cannot shrink; nothing was changed",
            human(template)
        ));
    }
    if let Some(big) = claims.iter().filter(|c| c.requested > size).max_by_key(|c| c.requested) {
        return StorageStep::Refuse(format!(
            "storage.size {size_text} is smaller than claim {} ({}): claims cannot shrink; \
             nothing was changed",
            big.name,
            human(big.requested)
        ));
    }
    let grow: Vec<String> =
        claims.iter().filter(|c| c.requested < size).map(|c| c.name.clone()).collect();
    if !grow.is_empty() {
        return StorageStep::Grow(grow);
    }
    let pending: Vec<String> = claims
        .iter()
        .filter(|c| c.capacity.is_some_and(|cap| cap < c.requested))
        .map(|c| {
            format!("{} ({} of {})", c.name, human(c.capacity.unwrap_or(0)), human(c.requested))
        })
        .collect();
    if pending.is_empty() {
        StorageStep::Steady
    } else {
        StorageStep::Wait(format!("resizing claims: {}", pending.join(", ")))
    }
}

/// Bytes in a Kubernetes quantity (`10Gi`, `500M`, `1.5Ti`, `1073741824`); `None` for what is
/// not a storage size.
pub fn parse_quantity(q: &str) -> Option<u128> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => return None,
    };
    let n: f64 = number.parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n * factor).round() as u128)
}

fn human(bytes: u128) -> String {
    const GI: u128 = 1 << 30;
    if bytes >= GI && bytes % GI == 0 {
        format!("{}Gi", bytes / GI)
    } else if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{}Mi", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: u128 = 1 << 30;

    fn claim(name: &str, requested: u128, capacity: Option<u128>) -> Claim {
        Claim { name: name.into(), requested, capacity }
    }

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(parse_quantity("10Gi"), Some(10 * GI));
        assert_eq!(parse_quantity("1.5Gi"), Some(3 * GI / 2));
        assert_eq!(parse_quantity("500M"), Some(500_000_000));
        assert_eq!(parse_quantity("1073741824"), Some(GI));
        assert_eq!(parse_quantity("2Ti"), Some(2048 * GI));
        assert_eq!(parse_quantity("10Gb"), None);
        assert_eq!(parse_quantity("lots"), None);
    }

    #[test]
    fn a_larger_size_grows_the_smaller_claims_then_waits_for_the_resize() {
        let claims = [claim("data-demo-0", GI, Some(GI)), claim("data-demo-1", 2 * GI, Some(GI))];
        assert_eq!(
            next_step(2 * GI, "2Gi", GI, &claims),
            StorageStep::Grow(vec!["data-demo-0".into()])
        );
        let claims =
            [claim("data-demo-0", 2 * GI, Some(GI)), claim("data-demo-1", 2 * GI, Some(2 * GI))];
        assert_eq!(
            next_step(2 * GI, "2Gi", GI, &claims),
            StorageStep::Wait("resizing claims: data-demo-0 (1Gi of 2Gi)".into())
        );
        let claims =
            [claim("data-demo-0", 2 * GI, Some(2 * GI)), claim("data-demo-1", 2 * GI, None)];
        assert_eq!(
            next_step(2 * GI, "2Gi", GI, &claims),
            StorageStep::Steady,
            "unbound: nothing to wait for"
        );
    }

    #[test]
    fn a_smaller_size_is_refused_naming_the_largest_claim() {
        let claims = [
            claim("data-demo-0", 2 * GI, Some(2 * GI)),
            claim("data-demo-1", 4 * GI, Some(4 * GI)),
        ];
        assert_eq!(
            next_step(GI, "1Gi", GI, &claims),
            StorageStep::Refuse(
                "storage.size 1Gi is smaller than claim data-demo-1 (4Gi): claims cannot shrink; \
                 nothing was changed"
                    .into()
            )
        );
        let step = next_step(GI, "1Gi", 2 * GI, &[]);
        assert!(
            matches!(step, StorageStep::Refuse(m) if m.contains("the 2Gi the cluster's claims"))
        );
    }
}
