//! What keeps one address or one crowd from taking the server: failed authentications counted per
//! address, and a bounded number of connections waiting to authenticate and of sessions.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed authentications per address within a sliding window. An address over the limit is
/// turned away at once (its connections closed before the handshake) until its failures age out.
pub struct AuthLimiter {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

/// What counts as one address: an IPv4 address, or an IPv6 /64 (one host is usually given a whole
/// /64, and would otherwise have endless addresses to try from).
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
    }
}

/// How many addresses the limiter remembers at most: a flood from many addresses must not grow
/// the map without end (the oldest are forgotten first).
const REMEMBERED: usize = 4096;

impl AuthLimiter {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one failure of `address`; true if that puts it at or over the limit (just now).
    pub fn fail(&self, address: IpAddr, now: Instant) -> bool {
        let address = address_group(address);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= REMEMBERED && !failures.contains_key(&address) {
            failures.retain(|_, times| times.last().is_some_and(|t| now - *t < self.window));
            if failures.len() >= REMEMBERED {
                let oldest = failures
                    .iter()
                    .min_by_key(|(_, times)| times.last().copied())
                    .map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    failures.remove(&oldest);
                }
            }
        }
        let times = failures.entry(address).or_default();
        times.retain(|t| now - *t < self.window);
        if times.len() < self.limit {
            times.push(now);
        }
        times.len() >= self.limit
    }

    /// Whether `address` is over the limit now.
    pub fn blocked(&self, address: IpAddr, now: Instant) -> bool {
        let address = address_group(address);
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(&address).is_some_and(|times| {
            times.iter().filter(|t| now - **t < self.window).count() >= self.limit
        })
    }
}

/// A bounded count (sessions, connections still authenticating): `take` hands out a slot that
/// frees itself when dropped, so a session that ends in any way gives its place back.
#[derive(Clone)]
pub struct Slots {
    taken: Arc<AtomicUsize>,
    limit: usize,
}

pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Slots {
    pub fn new(limit: usize) -> Self {
        Self {
            taken: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    pub fn take(&self) -> Option<Slot> {
        self.taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.taken.clone()))
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// A bound per key (sessions per user, connections still authenticating per address): `take`
/// hands out a slot that gives itself back when dropped.
pub struct PerKey<K: Eq + Hash + Clone> {
    taken: Arc<Mutex<HashMap<K, usize>>>,
    limit: usize,
}

pub struct KeySlot<K: Eq + Hash + Clone> {
    taken: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: Eq + Hash + Clone> Drop for KeySlot<K> {
    fn drop(&mut self) {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = taken.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                taken.remove(&self.key);
            }
        }
    }
}

impl<K: Eq + Hash + Clone> PerKey<K> {
    pub fn new(limit: usize) -> Self {
        Self {
            taken: Arc::new(Mutex::new(HashMap::new())),
            limit: limit.max(1),
        }
    }

    pub fn take(&self, key: &K) -> Option<KeySlot<K>> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let n = taken.entry(key.clone()).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(KeySlot {
            taken: self.taken.clone(),
            key: key.clone(),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_at_the_limit_until_its_failures_age_out() {
        let limiter = AuthLimiter::new(3, Duration::from_secs(60));
        let bad: IpAddr = [10, 0, 0, 1].into();
        let good: IpAddr = [10, 0, 0, 2].into();
        let start = Instant::now();
        assert!(!limiter.fail(bad, start));
        assert!(!limiter.fail(bad, start));
        assert!(!limiter.blocked(bad, start));
        assert!(
            limiter.fail(bad, start),
            "the third failure reaches the limit"
        );
        assert!(limiter.blocked(bad, start));
        // More failures while blocked do not extend what is remembered beyond the limit.
        for _ in 0..200 {
            limiter.fail(bad, start + Duration::from_secs(1));
        }
        assert!(
            !limiter.blocked(good, start),
            "another address is not affected"
        );
        assert!(limiter.blocked(bad, start + Duration::from_secs(59)));
        assert!(!limiter.blocked(bad, start + Duration::from_secs(61)));
    }

    #[test]
    fn a_flood_from_many_addresses_keeps_the_map_bounded() {
        let limiter = AuthLimiter::new(2, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..(REMEMBERED as u32 * 3) {
            limiter.fail(IpAddr::from(i.to_be_bytes()), now);
        }
        let remembered = limiter.failures.lock().map(|m| m.len()).unwrap_or(0);
        assert!(remembered <= REMEMBERED, "{remembered}");
    }

    #[test]
    fn an_ipv6_host_is_one_address_per_64() {
        let limiter = AuthLimiter::new(2, Duration::from_secs(60));
        let now = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        let b: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or(IpAddr::from([0u8; 16]));
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        limiter.fail(a, now);
        assert!(limiter.fail(b, now), "the same /64 counts as one address");
        assert!(limiter.blocked(a, now) && limiter.blocked(b, now));
        assert!(!limiter.blocked(other, now));
    }

    #[test]
    fn per_key_slots_are_bounded_per_key_and_given_back() {
        let per_user = PerKey::new(2);
        let a1 = per_user.take(&"alice");
        let a2 = per_user.take(&"alice");
        assert!(a1.is_some() && a2.is_some());
        assert!(per_user.take(&"alice").is_none());
        assert!(
            per_user.take(&"bob").is_some(),
            "another key has its own bound"
        );
        drop(a1);
        assert!(per_user.take(&"alice").is_some());
        drop(a2);
        let left = per_user.taken.lock().map(|m| m.len()).unwrap_or(99);
        assert_eq!(left, 0, "keys with no slot are forgotten");
    }

    #[test]
    fn slots_are_bounded_and_given_back_when_dropped() {
        let slots = Slots::new(2);
        let a = slots.take();
        let b = slots.take();
        assert!(a.is_some() && b.is_some());
        assert!(slots.take().is_none());
        drop(a);
        assert_eq!(slots.taken.load(Ordering::SeqCst), 1);
        assert!(slots.take().is_some());
    }
}
